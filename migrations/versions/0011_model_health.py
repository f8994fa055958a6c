"""Model health: the request log (what was served, by which model version, from which
feature values; written off the request path by serving.request_log, pruned by
`request_log_retention_days`) and the promotion audit trail (every alias change of a
registered model: promote, rollback, force, the demo's first promotion, a change made in
the MLflow UI that a service noticed).

Both are keyed by pseudonyms only, like the reviews: nothing the privacy scan flags.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "request_log",
        sa.Column("request_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("logged_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("route", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, nullable=True, comment="the pseudonym (reviews.user_id), never the shop's id"),
        sa.Column("items", postgresql.ARRAY(sa.Text), nullable=True, comment="scored or recommended items, in order"),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=True),
        sa.Column("alias", sa.Text, nullable=False, comment="champion (answered) or challenger (shadow)"),
        sa.Column("prediction", postgresql.JSONB, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("features", postgresql.JSONB, nullable=True, comment="numeric inputs the model used: name -> values"),
        sa.Column("error", sa.Text, nullable=True, comment="why a shadow answer failed"),
    )
    op.create_index("ix_request_log_logged_at", "request_log", ["logged_at"])
    op.create_index("ix_request_log_user", "request_log", ["user_id", "logged_at"])
    op.create_table(
        "promotion_audit",
        sa.Column("audit_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("changed_at", sa.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("actor", sa.Text, nullable=False, comment="OS user, or the service that noticed a UI change"),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("metrics", postgresql.JSONB, nullable=True),
        sa.Column("decision", sa.Text, nullable=True, comment="the gate's decision, in words"),
    )
    op.create_check_constraint(
        "ck_promotion_audit_action",
        "promotion_audit",
        "action IN ('promote', 'force', 'rollback', 'first', 'online', 'observed')",
    )
    op.create_index("ix_promotion_audit_model", "promotion_audit", ["model", "changed_at"])


def downgrade() -> None:
    op.drop_table("promotion_audit")
    op.drop_table("request_log")
