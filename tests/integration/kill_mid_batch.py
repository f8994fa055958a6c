"""Helper for test_ingest: ingests with small batches and kills itself with
SIGKILL in the middle of batch N's transaction (after its COPY, before commit)."""

import os
import signal
import sys
from pathlib import Path

from portrait.ingest.loader import Loader, ingest_file
from portrait.settings import Settings
from portrait.store import database

path, kill_at, batch_size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])


class DyingLoader(Loader):
    batches = 0

    def _copy_rows(self, cur, rows):
        loaded = super()._copy_rows(cur, rows)
        DyingLoader.batches += 1
        if DyingLoader.batches == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return loaded


settings = Settings()
ingest_file(
    database.engine(settings),
    "amazon-reviews",
    path,
    settings.id_key.encode(),
    batch_size=batch_size,
    progress=False,
    loader_factory=DyingLoader,
)
