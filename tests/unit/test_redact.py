"""Redaction of outgoing text."""

from __future__ import annotations

import pytest

from activities.redact import REDACTED, Redactor

SECRETS = [
    "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    "ghp_" + "a" * 36,
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg",
]


@pytest.mark.parametrize("secret", SECRETS)
def test_known_token_shapes_are_redacted(secret: str) -> None:
    out = Redactor()(f"deploy failed with {secret} in the log")
    assert secret not in out and REDACTED in out


def test_pairs_urls_bearer_and_private_keys() -> None:
    text = (
        "password=hunter2 and secret: 's3cr3t' at postgres://app:pa55word@db:5432/x "
        "Authorization: Bearer abcdef123456789\n-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"
    )
    out = Redactor()(text)
    for leaked in ("hunter2", "s3cr3t", "pa55word", "abcdef123456789", "MIIB"):
        assert leaked not in out
    assert "postgres://app:[REDACTED]@db:5432/x" in out
    assert "password=[REDACTED]" in out


def test_extra_patterns_and_clean_text_untouched() -> None:
    redact = Redactor([r"ACME-\d{6}"])
    assert redact("ticket ACME-123456 ok") == f"ticket {REDACTED} ok"
    assert redact("Build failed: acme/api@main (ci)") == "Build failed: acme/api@main (ci)"
