"""The champion models a service serves, reloaded when their alias moves."""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections.abc import Callable

from portrait.settings import get_settings
from portrait.store import database
from registry.models import load
from serving.errors import describe, down

log = logging.getLogger("portrait.serving")


class ChampionModel:
    """models:/NAME@ALIAS (the champion, or the challenger shadowed beside it),
    reloaded when the alias moves to another version. With `audit` (an engine), a
    champion that moved without an audit row (a change in the MLflow UI) is recorded."""

    def __init__(self, name: str, alias: str = "champion", audit=None) -> None:
        self.name, self.alias, self.audit = name, alias, audit
        self.model = None
        self.version: str | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> bool:
        """Load the champion if the alias moved (or force); True if the version changed.
        A failure keeps the model being served and records why."""
        from mlflow import MlflowClient

        with self._lock:
            try:
                version = str(MlflowClient().get_model_version_by_alias(self.name, self.alias).version)
                if version == self.version and self.model is not None and not force:
                    return False
                model, info = load(self.name, self.alias)
            except Exception as err:  # noqa: BLE001 - any failure to reach MLflow or load: keep serving
                if self.alias != "champion" and "not found" in str(err).lower():
                    self.model, self.version = None, None  # the alias was removed: no shadow any more
                error, self.error = self.error, describe(err)
                # said once per distinct reason: the poller asks every few seconds
                if self.alias == "champion" and self.error != error:
                    log.warning("cannot load %s@%s: %s", self.name, self.alias, self.error)
                return False
            changed = str(info.version) != self.version
            self.model, self.version, self.error = model, str(info.version), None
        if changed:
            log.info("serving %s@%s v%s", self.name, self.alias, self.version)
            self._audit(info.version)
        return changed

    def _audit(self, version: int) -> None:
        if self.audit is None or self.alias != "champion":
            return
        from registry.audit import record_observed

        try:
            record_observed(self.audit, self.name, int(version), f"service pid {os.getpid()} (noticed)")
        except Exception as err:  # noqa: BLE001 - the audit trail must never stop serving
            log.warning("cannot record %s's champion change in the audit trail: %s", self.name, describe(err))

    def get(self):
        """The model; a 503 naming why when there is none."""
        if self.model is None:
            raise down(
                f"model {self.name}@{self.alias} is not available: {self.error or 'not loaded'}; "
                "train and promote one (portrait models promote)"
            )
        return self.model


def poll_forever(refresh: Callable[[], object]) -> threading.Thread:
    """Call refresh every `champion_poll_seconds` in a daemon thread (an alias moved in the
    registry, a rollback say, is served within that time)."""
    seconds = get_settings().champion_poll_seconds

    def loop() -> None:
        while True:
            threading.Event().wait(seconds)
            try:
                refresh()
            except Exception as err:  # noqa: BLE001 - a poll that failed must not end the polling
                log.warning("poll failed: %s", describe(err))

    thread = threading.Thread(target=loop, daemon=True, name="portrait-champion-poll")
    thread.start()
    return thread


def settle() -> None:
    """After start-up: move everything loaded so far (torch, transformers, Feast,
    MLflow: millions of objects) out of the garbage collector's reach, so that no
    full collection walks them all with the GIL held while requests wait."""
    gc.collect()
    gc.freeze()


def configure_tracking() -> None:
    from registry import tracking

    database.ensure_running(get_settings())  # the tracking database lives on the profile's server
    tracking.configure(get_settings())
