"""The champion models a service serves, reloaded when their alias moves."""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable

from portrait.settings import get_settings
from portrait.store import database
from registry.models import load
from serving.errors import describe, down

log = logging.getLogger("portrait.serving")
POLL_SECONDS = 30.0


class ChampionModel:
    """models:/NAME@champion, reloaded when the alias moves to another version."""

    def __init__(self, name: str) -> None:
        self.name = name
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
                version = str(MlflowClient().get_model_version_by_alias(self.name, "champion").version)
                if version == self.version and self.model is not None and not force:
                    return False
                model, info = load(self.name)
            except Exception as err:  # noqa: BLE001 - any failure to reach MLflow or load: keep serving
                self.error = describe(err)
                log.warning("cannot load %s@champion: %s", self.name, self.error)
                return False
            changed = str(info.version) != self.version
            self.model, self.version, self.error = model, str(info.version), None
            return changed

    def get(self):
        """The model; a 503 naming why when there is none."""
        if self.model is None:
            raise down(
                f"model {self.name}@champion is not available: {self.error or 'not loaded'}; "
                "train and promote one (portrait models promote)"
            )
        return self.model


def poll_forever(refresh: Callable[[], object]) -> threading.Thread:
    """Call refresh every POLL_SECONDS in a daemon thread."""

    def loop() -> None:
        while True:
            threading.Event().wait(POLL_SECONDS)
            refresh()

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
