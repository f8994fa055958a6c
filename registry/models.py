"""The MLflow model registry: registered models `review-sentiment` (and
`review-sentiment-zh` where Chinese texts are routed to their own model),
`rating-predictor` and optionally `aspect-sentiment`, promotion by alias with a gate, rollback, loading by alias.

Aliases: `champion` is served, `challenger` is shadowed, `previous` is the
champion before the last promotion (what rollback restores). A person can set
the same aliases in the MLflow UI."""

from __future__ import annotations

from dataclasses import dataclass

SENTIMENT = "review-sentiment"
# Optional: the model /sentiment routes texts detected as Chinese to, where the shop's
# default one is English-only (`portrait train sentiment --language zh`)
SENTIMENT_ZH = "review-sentiment-zh"
RATING = "rating-predictor"
# Optional: the aspect-conditioned sentiment model (`portrait train aspects`); once promoted
# the feature build labels each aspect mention with it instead of its clause's sentiment
ASPECT_SENTIMENT = "aspect-sentiment"
# The headline metric of each model, logged on its run, and whether higher is better.
HEADLINE = {
    SENTIMENT: ("test_macro_f1", True),
    SENTIMENT_ZH: ("test_macro_f1", True),
    RATING: ("test_rmse", False),
    ASPECT_SENTIMENT: ("test_macro_f1", True),
}
OPTIONAL = (SENTIMENT_ZH, ASPECT_SENTIMENT)  # only some shops train them
CHAMPION, PREVIOUS = "champion", "previous"


BASELINE_PREFIX = "baseline_"  # version tag baseline_<headline metric>: its own run's baseline's value


class PromotionRefused(RuntimeError):
    """The version does not beat its own run's baseline, or the champion, on the headline metric."""


@dataclass
class VersionInfo:
    name: str
    version: int
    aliases: list[str]
    metric: str
    value: float | None
    run_id: str
    created: int
    tags: dict[str, str]


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def headline(name: str) -> tuple[str, bool]:
    if name not in HEADLINE:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(HEADLINE)}")
    return HEADLINE[name]


def version_info(name: str, version: int | str) -> VersionInfo:
    client = _client()
    v = client.get_model_version(name, str(version))
    metric, _ = headline(name)
    value = client.get_run(v.run_id).data.metrics.get(metric) if v.run_id else None
    return VersionInfo(
        name, int(v.version), list(v.aliases or []), metric, value, v.run_id, v.creation_timestamp, dict(v.tags or {})
    )


def list_versions(name: str) -> list[VersionInfo]:
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return sorted((version_info(name, v.version) for v in versions), key=lambda v: v.version)


def champion(name: str) -> VersionInfo | None:
    from mlflow.exceptions import MlflowException

    try:
        v = _client().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    return version_info(name, v.version)


def beats(name: str, candidate: float | None, incumbent: float | None, *, strictly: bool = False) -> bool:
    """Whether candidate is at least as good as (strictly: better than) incumbent on the headline metric."""
    if incumbent is None:
        return True
    if candidate is None:
        return False
    _, higher_is_better = headline(name)
    if strictly:
        return candidate > incumbent if higher_is_better else candidate < incumbent
    return candidate >= incumbent if higher_is_better else candidate <= incumbent


def baseline_value(info: VersionInfo) -> float | None:
    """The headline metric of the baseline trained beside this version (None if not recorded)."""
    value = info.tags.get(BASELINE_PREFIX + info.metric)
    return float(value) if value is not None else None


def promote(
    name: str, version: int, *, force: bool = False, audit=None, action: str | None = None
) -> tuple[VersionInfo, VersionInfo | None]:
    """Make `version` the champion; the old champion becomes `previous`. Refuses,
    unless forced, a version that does not beat the baseline of its own run
    (TF-IDF + LR, user + item bias) or is worse than the champion on the headline metric.
    With `audit` (an engine), the change is appended to the promotion audit trail."""
    candidate = version_info(name, version)
    current = champion(name)
    if current and current.version == candidate.version:
        return candidate, current
    baseline = baseline_value(candidate)
    # a version that is its run's baseline (chosen over the fine-tuned model on validation) equals it
    strictly = candidate.tags.get("model_kind") != "baseline"
    if not force and baseline is not None and not beats(name, candidate.value, baseline, strictly=strictly):
        raise PromotionRefused(
            f"{name} v{candidate.version} has {candidate.metric} {_fmt(candidate.value)}, no better than the "
            f"baseline of its own run ({candidate.tags.get('baseline', 'baseline')}: {_fmt(baseline)}); "
            "use --force to promote it anyway"
        )
    if current and not force and not beats(name, candidate.value, current.value):
        raise PromotionRefused(
            f"{name} v{candidate.version} has {candidate.metric} {_fmt(candidate.value)}, worse than champion "
            f"v{current.version}'s {_fmt(current.value)}; use --force to promote it anyway"
        )
    client = _client()
    if current:
        client.set_registered_model_alias(name, PREVIOUS, str(current.version))
    client.set_registered_model_alias(name, CHAMPION, str(candidate.version))
    if audit is not None:
        from registry import audit as trail

        kind = action or ("first" if current is None else "force" if force else "promote")
        decision = (
            f"{candidate.metric} {_fmt(candidate.value)}; baseline {_fmt(baseline)}; "
            f"champion {_fmt(current.value) if current else 'none'}"
            + ("; forced past the gate" if force else "; passed the gate")
        )
        metrics = {
            candidate.metric: candidate.value,
            "baseline": baseline,
            "champion": current.value if current else None,
        }
        trail.record(
            audit,
            name,
            kind,
            current.version if current else None,
            candidate.version,
            metrics=metrics,
            decision=decision,
        )
    return version_info(name, version), current


def describe_version(name: str, version: int, description: str) -> None:
    """The version's model card (its MLflow description, shown in the registry UI)."""
    _client().update_model_version(name, str(version), description=description)


def rollback(name: str, *, audit=None) -> tuple[VersionInfo, VersionInfo | None]:
    """Restore the `previous` champion; the demoted one becomes `previous`, so a
    second rollback undoes the first. With `audit` (an engine), the change is recorded."""
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        prev = client.get_model_version_by_alias(name, PREVIOUS)
    except MlflowException:
        raise PromotionRefused(f"{name} has no previous champion to roll back to") from None
    current = champion(name)
    client.set_registered_model_alias(name, CHAMPION, prev.version)
    if current:
        client.set_registered_model_alias(name, PREVIOUS, str(current.version))
    restored = version_info(name, prev.version)
    if audit is not None:
        from registry import audit as trail

        trail.record(
            audit,
            name,
            "rollback",
            current.version if current else None,
            restored.version,
            metrics={restored.metric: restored.value},
            decision="rolled back to the previous champion",
        )
    return restored, current


def load(name: str, alias: str = CHAMPION):
    """(pyfunc model, version info) for models:/NAME@ALIAS."""
    import mlflow.pyfunc

    v = _client().get_model_version_by_alias(name, alias)
    return mlflow.pyfunc.load_model(f"models:/{name}@{alias}"), version_info(name, v.version)


class ModelSentiment:
    """A registered sentiment model as the feature build's labeler
    (portrait.features.build.SentimentLabeler): labels review texts."""

    def __init__(self, model, version: int | str, name: str = SENTIMENT) -> None:
        self.model, self.source = model, f"model:{name}/{version}"

    def __call__(self, reviews):
        import pandas as pd

        return self.model.predict(pd.DataFrame({"text": reviews["text"].tolist()}))["label"]


class WithAspects:
    """A labeler whose aspect mentions are labelled by the aspect-sentiment champion
    (text + aspect) rather than by their clause's sentiment; its source names both,
    so a new aspect champion rebuilds the text profiles."""

    def __init__(self, labeler, model, version: int | str, language: str = "en") -> None:
        self.labeler, self.model = labeler, model
        self.language = language  # the language it was trained on: other mentions keep the clause rule
        self.source = f"{labeler.source}+model:{ASPECT_SENTIMENT}/{version}"

    def __call__(self, reviews):
        return self.labeler(reviews)

    def aspects(self, mentions):
        """mentions: a frame with text (the clause) and aspect."""
        return self.model.predict(mentions[["text", "aspect"]])["label"]


def champion_labeler(settings, fallback):
    """The champion review-sentiment model as a labeler when one is registered, else `fallback`
    (labels from ratings), with the aspect-sentiment champion for aspect mentions when
    there is one; the log says which and why."""
    import logging

    from registry import tracking

    log = logging.getLogger(__name__)
    try:
        tracking.configure(settings)
        model, info = load(SENTIMENT)
        labeler = ModelSentiment(model, info.version)
    except Exception as err:  # noqa: BLE001 - no registry or no champion: the fallback labels, and the log says why
        log.info("sentiment from ratings (no champion %s: %s)", SENTIMENT, str(err)[:200])
        labeler = fallback
    try:
        aspect_model, aspect_info = load(ASPECT_SENTIMENT)
    except Exception as err:  # noqa: BLE001 - optional model: aspects take their clause's sentiment
        log.info("aspects by their clause's sentiment (no champion %s: %s)", ASPECT_SENTIMENT, str(err)[:200])
        return labeler
    return WithAspects(labeler, aspect_model, aspect_info.version, aspect_info.tags.get("language", "en"))


def tag_version(name: str, version: int, tags: dict[str, str]) -> None:
    """Provenance on the version itself (data window, feature service, commit, headline metric)."""
    client = _client()
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
