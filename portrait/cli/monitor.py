"""`portrait monitor`: the served models' health from the request log, on demand (cron,
a notebook): drift against each champion's training set, online quality per version
from late labels, the shadow challenger; logged as an MLflow run linked to the champion."""

from __future__ import annotations

import click

from portrait.cli._common import connect, track
from portrait.settings import get_settings


def health_lines(t) -> list[str]:
    """The tables as text (also the report's and `models compare`'s)."""
    lines = []
    for model, drift in t.drift.items():
        lines.append(f"{model} v{t.champions[model]}: drift against its training set")
        for d in drift:
            score = "n/a" if d.score is None else f"{d.score:.3f}"
            lines.append(f"  {d.metric.upper():<4} {d.name:<40} {score:>7}  rows {d.rows:<6} {d.verdict}")
    if t.freshness:
        lines.append("feature freshness (now - newest event time) and answers served past the view's TTL")
    for f in t.freshness:
        age = "n/a" if f.age_s is None else f"{f.age_s / 86400:.1f} d"
        ttl = "none" if f.ttl_s is None else f"{f.ttl_s / 86400:.0f} d"
        share = "n/a" if f.stale_share is None else f"{f.stale_share:.1%} of {f.answers}"
        lines.append(f"  {f.view:<24} age {age:>10}  ttl {ttl:>8}  stale {share}")
    lines.append("online quality from late labels (95% bootstrap interval)")
    if not t.quality:
        lines.append("  no labelled answers yet (a review of an item after the service answered for it)")
    for q in t.quality:
        offline = "" if q.offline is None else f"  offline test {q.offline:.4f}"
        lines.append(f"  {q.model} v{q.version} {q.alias:<10} {q.online.metric:<9} {q.online.text()}{offline}")
    for model, by_alias in t.shadow.items():
        if "challenger" not in by_alias:
            continue
        lines.append(f"{model}: shadow challenger")
        for alias, s in by_alias.items():
            p95 = "n/a" if s.p95_latency_ms is None else f"{s.p95_latency_ms:.1f} ms"
            lines.append(f"  {alias:<10} answers {s.answers:<6} p95 {p95:<10} errors {s.error_rate:.2%}")
        agreement = {k: v for k, v in t.agreement.get(model, {}).items() if v is not None}
        lines.append("  agreement: " + ", ".join(f"{k} {v:.3f}" for k, v in agreement.items()))
        if model in t.difference:
            lines.append(f"  challenger - champion online {t.difference[model].metric}: {t.difference[model].text()}")
    return lines


def log_monitoring_run(t) -> list[str]:
    """One MLflow run per champion in the `portrait-monitoring` experiment, its metrics
    also linked to the champion's logged model (the registry page shows their history)."""
    import mlflow
    from mlflow import MlflowClient

    from registry import tracking

    tracking.configure(get_settings(), experiment="portrait-monitoring")
    runs = []
    for model, version in t.champions.items():
        metrics = {f"{d.metric}_{_key(d.name)}": d.score for d in t.drift.get(model, []) if d.score is not None}
        for q in t.quality:
            if q.model == model and q.online.value is not None:
                metrics[f"online_{q.online.metric}_{q.alias}_v{q.version}"] = q.online.value
        mv = MlflowClient().get_model_version(model, version)
        with mlflow.start_run(run_name=f"monitor {model} v{version}", tags={"model": model, "version": version}) as run:
            mlflow.log_text("\n".join(health_lines(t)) + "\n", "health.txt")
            if metrics:
                mlflow.log_metrics(metrics, model_id=getattr(mv, "model_id", None))
            runs.append(run.info.run_id)
    tracking.configure(get_settings())
    return runs


def _key(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name).strip("_")


@click.command()
@click.option("--no-mlflow", is_flag=True, help="Print only; log no monitoring run.")
def monitor(no_mlflow: bool) -> None:
    """Drift, online quality and the shadow challenger, from the request log."""
    from portrait.featurestore.repo import feature_store
    from registry.monitoring import tables

    settings = get_settings()
    track(settings)
    t = tables(connect(settings), settings, store=feature_store(settings))
    for line in health_lines(t):
        click.echo(line)
    if not no_mlflow and t.champions:
        runs = log_monitoring_run(t)
        click.echo(f"logged to MLflow experiment portrait-monitoring: {', '.join(runs)}")


COMMANDS = [monitor]
