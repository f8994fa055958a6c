"""Ingest runs name their owner (host, pid, the process's start time) and beat a
heartbeat, so that a run whose process died (kill -9, a crashed API worker) is marked
`interrupted` instead of staying `running`, and a starting API worker closes only the
runs of processes that are gone, never a live replica's.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TS = sa.TIMESTAMP(timezone=True)


def upgrade() -> None:
    op.add_column("ingest_runs", sa.Column("owner_host", sa.Text, nullable=True, comment="host of the process running it"))
    op.add_column("ingest_runs", sa.Column("owner_pid", sa.Integer, nullable=True))
    op.add_column(
        "ingest_runs",
        sa.Column("owner_started_at", TS, nullable=True, comment="the owner's process start time (pids are reused)"),
    )
    op.add_column("ingest_runs", sa.Column("heartbeat_at", TS, nullable=True, comment="last sign of life of the owner"))
    op.execute("UPDATE ingest_runs SET heartbeat_at = COALESCE(finished_at, started_at)")
    op.drop_constraint("ck_ingest_runs_status", "ingest_runs", type_="check")
    op.create_check_constraint(
        "ck_ingest_runs_status", "ingest_runs", "status IN ('running', 'done', 'failed', 'interrupted')"
    )


def downgrade() -> None:
    op.execute("UPDATE ingest_runs SET status = 'failed' WHERE status = 'interrupted'")
    op.drop_constraint("ck_ingest_runs_status", "ingest_runs", type_="check")
    op.create_check_constraint("ck_ingest_runs_status", "ingest_runs", "status IN ('running', 'done', 'failed')")
    for column in ("heartbeat_at", "owner_started_at", "owner_pid", "owner_host"):
        op.drop_column("ingest_runs", column)
