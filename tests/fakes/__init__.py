"""Local fakes of external services for tests and benchmarks."""

from .slack import FakeSlack, Recorded, channel_id_for, validate_blocks

__all__ = ["FakeSlack", "Recorded", "channel_id_for", "validate_blocks"]
