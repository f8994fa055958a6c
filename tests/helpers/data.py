"""The shared datasets and the test key: paths beside the repo (../shared/data) and real lines of the Amazon file."""

from __future__ import annotations

import gzip
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # tests/helpers/data.py -> the repo


SHARED_DATA = REPO.parent / "shared" / "data"


AMAZON = SHARED_DATA / "amazon_musical_instruments_5core" / "reviews_Musical_Instruments_5.json.gz"


CDNOW = SHARED_DATA / "cdnow_purchases" / "CDNOW_master.txt"


TEST_KEY = b"test-pseudonymization-key-of-32-bytes-or-more"


def real_lines(n: int) -> list[bytes]:
    with gzip.open(AMAZON, "rb") as f:
        return [f.readline() for _ in range(n)]
