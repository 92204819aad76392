"""The audit journal (see :mod:`operations.journal.store`)."""

from operations.journal.store import (
    DSN_ENV,
    GENESIS,
    Journal,
    JournalRecord,
    VerifyResult,
    canonical,
    dsn_from_env,
    engine_url,
    iso,
    open_journal,
    seal,
)

__all__ = [
    "DSN_ENV",
    "GENESIS",
    "Journal",
    "JournalRecord",
    "VerifyResult",
    "canonical",
    "dsn_from_env",
    "engine_url",
    "iso",
    "open_journal",
    "seal",
]
