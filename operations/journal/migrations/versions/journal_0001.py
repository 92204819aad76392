"""The journal table: one hash-chained row per audited event; no update or delete path exists.

Revision ID: 0001_journal
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_journal"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("time", sa.String(32), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object", sa.String(512), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_sha256", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.UniqueConstraint("seq", name="journal_seq_unique"),
        sa.UniqueConstraint("key", name="journal_key_unique"),
    )
    op.create_index("journal_action_seq", "journal", ["action", "seq"])
    op.create_index("journal_time", "journal", ["time"])


def downgrade() -> None:
    op.drop_table("journal")
