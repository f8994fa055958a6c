"""Model health inside the service: freshness of the features served, the challenger
scored in shadow, and the drift / online-quality gauges Prometheus scrapes.

The shadow never touches an answer: the champion answers, then (on a sampled share
of requests) the challenger is scored on the same inputs in a worker thread; its
result, latency or error is only logged. At most SHADOW_PENDING shadows wait at a
time: beyond, the request is not shadowed (counted)."""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from serving.errors import describe
from serving.request_log import Entry, RequestLog

log = logging.getLogger("portrait.serving")
SHADOW_PENDING = 4


@functools.cache
def gauges() -> dict:
    """The health series (multiprocess-safe: the newest value of any worker is exposed)."""
    from prometheus_client import Counter, Gauge

    def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
        return Gauge(name, doc, labels, multiprocess_mode="mostrecent")

    return {
        "freshness": gauge(
            "portrait_feature_freshness_seconds", "Now minus the newest event time served, per view", ["view"]
        ),
        "reads": Counter("portrait_feature_reads", "Feature view values served", ["view"]),
        "stale": Counter("portrait_feature_stale", "Feature view values served past the view's TTL", ["view"]),
        "psi": gauge("portrait_feature_psi", "PSI of a model input against its training set", ["model", "feature"]),
        "js": gauge("portrait_prediction_js", "Jensen-Shannon distance of predictions vs the test set", ["model"]),
        "online": gauge(
            "portrait_online_metric", "Online quality from late labels", ["model", "version", "alias", "metric"]
        ),
        "offline": gauge(
            "portrait_offline_metric", "The version's offline test metric", ["model", "version", "metric"]
        ),
        "agreement": gauge("portrait_shadow_agreement", "Challenger agreement with the champion", ["model", "measure"]),
        "shadow_errors": Counter("portrait_shadow_errors", "Challenger answers that failed or timed out", ["model"]),
        "shadow_skipped": Counter("portrait_shadow_skipped", "Requests not shadowed: too many pending", ["model"]),
    }


def observe_freshness(times: dict[str, float], stale: list[str], now_unix: float) -> None:
    g = gauges()
    for view, ts in times.items():
        g["freshness"].labels(view=view).set(now_unix - ts)
        g["reads"].labels(view=view).inc()
    for view in stale:
        g["stale"].labels(view=view).inc()


class Shadow:
    """Scores the challenger off the request path and logs what it would have answered."""

    def __init__(self, request_log: RequestLog, share: float, timeout_s: float) -> None:
        self.request_log, self.share, self.timeout_s = request_log, share, timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow")
        self._slots = threading.BoundedSemaphore(SHADOW_PENDING)

    def submit(self, challenger, score: Callable[[object], Entry]) -> bool:
        """Run score(challenger model) later; False when not shadowed (none, not sampled, busy)."""
        if challenger.model is None or random.random() >= self.share:
            return False
        if not self._slots.acquire(blocking=False):
            gauges()["shadow_skipped"].labels(model=challenger.name).inc()
            return False
        self._pool.submit(self._run, challenger, score)
        return True

    def _run(self, challenger, score: Callable[[object], Entry]) -> None:
        started = time.perf_counter()
        try:
            model, version = challenger.model, challenger.version
            try:
                entry = score(model)
                entry.version, entry.alias = version, "challenger"
                seconds = time.perf_counter() - started
                entry.latency_ms = seconds * 1000
                entry.prediction["model_ms"] = entry.latency_ms  # its whole work is the model's
                if seconds > self.timeout_s:
                    entry.error = f"timeout: {seconds:.2f} s > {self.timeout_s} s"
            except Exception as err:  # noqa: BLE001 - a failing challenger is a finding, logged, never raised
                entry = Entry("shadow", challenger.name, version, {}, (time.perf_counter() - started) * 1000)
                entry.alias, entry.error = "challenger", describe(err)
            if entry.error:
                gauges()["shadow_errors"].labels(model=challenger.name).inc()
            self.request_log.put(entry)
        finally:
            self._slots.release()


def publish(tables) -> None:
    """Set the gauges from registry.monitoring's tables (the service's monitor thread)."""
    g = gauges()
    for model, drift in tables.drift.items():
        for d in drift:
            if d.score is None:
                continue
            if d.metric == "psi":
                g["psi"].labels(model=model, feature=d.name).set(d.score)
            else:
                g["js"].labels(model=model).set(d.score)
    for q in tables.quality:
        if q.online.value is not None:
            g["online"].labels(model=q.model, version=q.version, alias=q.alias, metric=q.online.metric).set(
                q.online.value
            )
        if q.offline is not None:
            g["offline"].labels(model=q.model, version=q.version, metric=q.online.metric).set(q.offline)
    for model, agreement in tables.agreement.items():
        for measure, value in agreement.items():
            if value is not None:
                g["agreement"].labels(model=model, measure=measure).set(value)


def monitor_forever(compute: Callable[[], object], every_s: float) -> threading.Thread:
    def loop() -> None:
        while True:
            try:
                publish(compute())
            except Exception as err:  # noqa: BLE001 - the gauges keep their last values; the log says why
                log.warning("model health not computed: %s", describe(err))
            threading.Event().wait(every_s)

    thread = threading.Thread(target=loop, daemon=True, name="portrait-monitor")
    thread.start()
    return thread
