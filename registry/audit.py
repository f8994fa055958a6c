"""The promotion audit trail (MLflow keeps no history of alias changes, mlflow #2169):
one row per change of a registered model's `champion` alias, whoever made it —
`portrait models promote / rollback` (the OS user), the demo's first promotion, or a
change made in the MLflow UI, which a service's champion poller notices and records."""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import sqlalchemy as sa

ACTIONS = ("promote", "force", "rollback", "first", "online", "observed")


@dataclass(frozen=True)
class AuditRow:
    changed_at: datetime
    actor: str
    model: str
    alias: str
    action: str
    from_version: int | None
    to_version: int | None
    metrics: dict
    decision: str | None


def actor() -> str:
    """Who is changing the alias: the OS user (PORTRAIT_ACTOR overrides it, e.g. in CI jobs)."""
    try:
        return os.environ.get("PORTRAIT_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid {os.getuid()}"


def record(
    engine: sa.Engine,
    model: str,
    action: str,
    from_version: int | None,
    to_version: int | None,
    *,
    metrics: dict | None = None,
    decision: str | None = None,
    who: str | None = None,
    alias: str = "champion",
) -> None:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; expected one of {', '.join(ACTIONS)}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO promotion_audit (changed_at, actor, model, alias, action, from_version, to_version,"
                " metrics, decision) VALUES (:at, :actor, :model, :alias, :action, :from_v, :to_v,"
                " CAST(:metrics AS jsonb), :decision)"
            ),
            {
                "at": datetime.now(timezone.utc),
                "actor": who or actor(),
                "model": model,
                "alias": alias,
                "action": action,
                "from_v": from_version,
                "to_v": to_version,
                "metrics": json.dumps(metrics or {}),
                "decision": decision,
            },
        )


def record_observed(engine: sa.Engine, model: str, version: int, who: str) -> bool:
    """A champion the poller found that no audit row put there (a change in the MLflow UI):
    recorded once, whatever the number of services noticing it at the same time."""
    from portrait.store.database import advisory_lock

    with advisory_lock(engine, f"portrait/audit/{model}"):
        with engine.connect() as conn:
            last = conn.execute(
                sa.text(
                    "SELECT to_version FROM promotion_audit WHERE model = :m AND alias = 'champion'"
                    " ORDER BY changed_at DESC, audit_id DESC LIMIT 1"
                ),
                {"m": model},
            ).scalar()
        if last == version:
            return False
        record(
            engine,
            model,
            "observed",
            last,
            version,
            decision="changed outside portrait (MLflow UI or API); no gate was applied",
            who=who,
        )
    return True


def history(engine: sa.Engine, model: str, limit: int = 100) -> list[AuditRow]:
    """The model's alias changes, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT changed_at, actor, model, alias, action, from_version, to_version, metrics, decision"
                " FROM promotion_audit WHERE model = :m ORDER BY changed_at DESC, audit_id DESC LIMIT :limit"
            ),
            {"m": model, "limit": limit},
        ).all()
    return [
        AuditRow(
            changed_at=r[0],
            actor=r[1],
            model=r[2],
            alias=r[3],
            action=r[4],
            from_version=r[5],
            to_version=r[6],
            metrics=r[7] or {},
            decision=r[8],
        )
        for r in rows
    ]
