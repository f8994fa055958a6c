"""The synthetic shop generator: deterministic by seed, marked synthetic, sized as asked,
and its marginals close to the real data's (KS statistics)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json

import numpy as np
import pytest

from portrait.ops import synth
from tests.helpers.data import SHARED_DATA

pytestmark = pytest.mark.skipif(not (SHARED_DATA / synth.AMAZON).exists(), reason="shared data not found")


@pytest.fixture(scope="module")
def real():
    return synth.load_real(SHARED_DATA)


def digest(path) -> str:
    return hashlib.sha256(gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()).hexdigest()


def test_same_seed_same_files_other_seed_other_files(real, tmp_path):
    size = dict(users=300, items=120, reviews=2000, events=3000)
    a = synth.generate(real, tmp_path / "a", seed=7, progress=False, **size)
    b = synth.generate(real, tmp_path / "b", seed=7, progress=False, **size)
    c = synth.generate(real, tmp_path / "c", seed=8, progress=False, **size)
    assert digest(a.reviews_path) == digest(b.reviews_path) and digest(a.events_path) == digest(b.events_path)
    assert digest(a.reviews_path) != digest(c.reviews_path)
    assert "synthetic" in a.reviews_path.name and "synthetic" in a.events_path.name


def test_sizes_ids_and_formats(real, tmp_path):
    shop = synth.generate(real, tmp_path, users=500, items=200, reviews=3500, events=7000, seed=1, progress=False)
    with gzip.open(shop.reviews_path, "rt") as f:
        records = [json.loads(line) for line in f]
    assert len(records) == shop.reviews == 3500  # no (user, item) pair twice, none lost
    assert len({(r["reviewerID"], r["asin"]) for r in records}) == len(records)
    assert all(r["reviewerID"].startswith("synth-u") and r["asin"].startswith("synth-i") for r in records)
    assert {r["overall"] for r in records} <= {1.0, 2.0, 3.0, 4.0, 5.0}
    with gzip.open(shop.events_path, "rt") as f:
        events = list(csv.DictReader(f))
    assert len(events) == shop.events == 7000
    kinds = {k: sum(e["event_type"] == k for e in events) for k in ("purchase", "cart", "view")}
    # the funnel: 1 purchase : 3 carts : 10 views
    assert kinds["purchase"] == 7000 // 14 and 2.5 < kinds["cart"] / kinds["purchase"] < 3.5
    assert all(float(e["amount"]) >= 0 for e in events if e["event_type"] == "purchase")


def test_marginals_match_the_real_data(real, tmp_path):
    # the real ratio of reviews per user (7.2) and per item (11.4)
    shop = synth.generate(real, tmp_path, users=2785, items=1750, reviews=20000, events=28000, seed=0, progress=False)
    ks = synth.check(real, shop)
    assert set(ks) == {"reviews_per_user", "reviews_per_item", "rating", "review_gap_s", "purchase_amount"}
    assert all(v < 0.1 for v in ks.values()), ks
    # and the check can fail: uniform ratings are far from the real ones
    shop.stats["rating"] = np.random.default_rng(0).integers(1, 6, size=20000)
    assert synth.check(real, shop)["rating"] > 0.3


def test_chinese_shop_writes_the_chinese_export_format(tmp_path):
    real_zh = synth.load_real(SHARED_DATA, "zh")
    shop = synth.generate(real_zh, tmp_path, users=50, items=200, reviews=300, events=0, seed=0, progress=False)
    with open(shop.reviews_path, encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    from portrait.ingest.zh_sample import COLUMNS

    assert list(rows[0]) == list(COLUMNS) and len(rows) == shop.reviews == 300
    assert {r["评分"] for r in rows} <= {"0", "1"}
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in r["评价内容"]) for r in rows[:50])
