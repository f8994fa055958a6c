"""Privacy and durable forgetting: rejected lines sealed (never in the clear),
tombstones of forgotten users, the pseudonymization key's fingerprint.

The old clear-text `ingest_rejects.raw` is dropped, not converted: the migration
has no key to seal it with, and the clear text is what leaked ids. The rows keep
their path, line number and reason, so the lines can be read again from the files.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_column("ingest_rejects", "raw")
    op.add_column(
        "ingest_rejects",
        sa.Column("user_id", sa.Text, nullable=True, comment="pseudonym of the line's user, where it could be located"),
    )
    op.add_column(
        "ingest_rejects",
        sa.Column(
            "raw_sealed",
            sa.LargeBinary,
            nullable=True,
            comment="the line as read, AES-GCM sealed with a key derived from the id key (portrait rejects shows it)",
        ),
    )
    op.create_index("ix_ingest_rejects_user", "ingest_rejects", ["user_id"])
    op.add_column("ingest_runs", sa.Column("rows_forgotten", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "forgotten_users",
        sa.Column("user_id", sa.Text, primary_key=True, comment="pseudonym of an erased user: later rows of it are skipped"),
        sa.Column("forgotten_at", TS, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "id_key_fingerprint",
        sa.Column("singleton", sa.Boolean, primary_key=True, server_default=sa.true()),
        sa.Column("fingerprint", sa.Text, nullable=False, comment="HMAC of a fixed label under the id key; never the key"),
        sa.Column("created_at", TS, nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("singleton", name="ck_id_key_fingerprint_one_row"),
    )


def downgrade() -> None:
    op.drop_table("id_key_fingerprint")
    op.drop_table("forgotten_users")
    op.drop_column("ingest_runs", "rows_forgotten")
    op.drop_index("ix_ingest_rejects_user", "ingest_rejects")
    op.drop_column("ingest_rejects", "raw_sealed")
    op.drop_column("ingest_rejects", "user_id")
    op.add_column("ingest_rejects", sa.Column("raw", sa.Text, nullable=False, server_default=""))
