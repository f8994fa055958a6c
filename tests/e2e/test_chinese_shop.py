"""The Chinese shop end to end, the way `make demo-zh` builds it: the synthetic
export (real online_shopping_10_cats texts) through the generic import, Chinese
tags and embeddings, Feast, training, promotion, BentoML serving and the report,
on a tiny random BERT with multilingual-e5-small's tokenizer (the real encoder's
figures come from `make demo-zh` and the README)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers.data import REPO
from tests.helpers.deployment import ADMIN_KEY, API_KEY, deployment_env, free_port, sh

pytestmark = pytest.mark.e2e
CHINESE_WORD = re.compile(r"[\u4e00-\u9fff]{2,}")


class Shop:
    def __init__(self, env: dict, url: str, log: str) -> None:
        self.env, self.url, self.log = env, url, log

    def post(self, path: str, body: dict, admin: bool = False) -> httpx.Response:
        key = ADMIN_KEY if admin else API_KEY
        return httpx.post(f"{self.url}{path}", json=body, headers={"X-API-Key": key}, timeout=60)

    def sql(self, query: str) -> str:
        return sh(f'psql "$(portrait db url | sed \'s/+psycopg//\')" -Atc "{query}"', self.env).strip()


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_multilingual_bert):
    root = tmp_path_factory.mktemp("chinese-shop")
    env = deployment_env(root, tiny_multilingual_bert)
    port = free_port()
    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "portrait.cli.demo",
            "--lang",
            "zh",
            "--port",
            str(port),
            "--reviews",
            "600",
            "--traffic",
            "20",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    pid_file = root / "state" / "serve.pid"
    try:
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
        # a tiny random model need not beat its baseline (the demo then keeps it a candidate):
        # promote it as a person would in the MLflow UI, and reload
        for name in ("review-sentiment", "rating-predictor"):
            sh(f"portrait models champion {name} || portrait models promote {name} 1 --force", env)
        s = Shop(env, f"http://127.0.0.1:{port}", demo.stdout + demo.stderr)
        assert s.post("/admin/reload", {}, admin=True).status_code == 200
        yield s
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)
        subprocess.run(["portrait", "db", "down"], env=env, capture_output=True, timeout=60)


def most_active_buyer(shop: Shop) -> str:
    line = next(line for line in shop.log.splitlines() if line.startswith("POST /profile"))
    return re.search(r'"user_id": "([^"]+)"', line).group(1)


def test_the_export_loads_through_the_generic_import_with_chinese_languages(shop):
    counts = re.search(r"read ([\d,]+) = loaded ([\d,]+) \+ rejected 0 \+ duplicates 0 \+ forgotten 0 \(ok\)", shop.log)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) >= 590, shop.log[-3000:]
    languages = dict(line.split("|") for line in shop.sql("SELECT language, count(*) FROM reviews GROUP BY 1").split())
    assert int(languages["zh"]) >= 0.95 * sum(map(int, languages.values()))


def test_sentiment_answers_chinese_with_the_classes_the_shop_has(shop):
    r = shop.post("/sentiment", {"texts": ["音质很好，物流也很快", "用了两天就坏了，非常失望"]})
    assert r.status_code == 200, r.text
    for result in r.json()["results"]:
        # 0/1 labels teach no neutral class: the model answers negative or positive only
        assert set(result["probabilities"]) == {"negative", "positive"}
        assert result["label"] in ("negative", "positive")
        assert abs(sum(result["probabilities"].values()) - 1) < 1e-3


def test_profile_has_chinese_aspects_with_sentiment_and_lengths_in_characters(shop):
    buyer = most_active_buyer(shop)
    r = shop.post("/profile", {"user_id": buyer})
    assert r.status_code == 200, r.text
    aspects = r.json()["aspects"]
    assert aspects, r.json()
    assert all(CHINESE_WORD.fullmatch(a["aspect"]) for a in aspects), aspects  # words, not characters
    assert {a["sentiment"] for a in aspects} <= {"positive", "negative", "mixed"}
    assert len(r.json()["interest_tags"]) == len(aspects)  # the same aspects, as "aspect +" strings
    assert not any(word in a["aspect"] for a in aspects for word in ("填写", "默认", "满意", "不错"))
    behavior = r.json()["behavior"]
    assert behavior["review_chars_mean_zh"] > 5 and behavior["review_words_mean"] is None


def test_recommend_and_rating_serve_the_chinese_catalog(shop):
    buyer = most_active_buyer(shop)
    r = shop.post("/recommend", {"user_id": buyer, "k": 5, "exclude_seen": True})
    assert r.status_code == 200, r.text
    items = [x["item_id"] for x in r.json()["items"]]
    assert len(items) == 5 and len(set(items)) == 5
    rated = shop.post("/rating", {"user_id": buyer, "item_ids": items[:2]})
    assert rated.status_code == 200 and len(rated.json()["ratings"]) == 2


def test_a_chinese_review_is_masked_stored_and_profiled(shop):
    item = shop.sql("SELECT item_id FROM items ORDER BY item_id LIMIT 1")
    text = "质量很好，做工精细。有问题请打我电话 +86 138-0013-8000 或加QQ：12345678"
    r = shop.post("/reviews", {"user_id": "新顾客-1", "item_id": item, "rating": 5, "text": text})
    assert r.status_code == 200, r.text
    assert r.json()["sentiment"]["label"] in ("negative", "positive")
    stored = shop.sql("SELECT text FROM reviews WHERE text LIKE '质量很好，做工精细。有问题%'")
    assert stored == "质量很好，做工精细。有问题请打我电话 [phone] 或加QQ：[qq]"
    assert shop.sql("SELECT language FROM reviews WHERE text LIKE '质量很好，做工精细。有问题%'") == "zh"
    profile = shop.post("/profile", {"user_id": "新顾客-1"})
    assert profile.status_code == 200 and profile.json()["sentiment_tendency"]["positive"] == 1.0


def test_the_report_renders_chinese_labels_in_chromium(shop, tmp_path):
    from tests.helpers.report import render_in_chromium

    out = tmp_path / "report"
    sh(f"portrait report --out {out}", shop.env)
    dom, dark = render_in_chromium(out / "index.html", tmp_path)
    charts, loaded = re.search(r'data-charts="(\d+)"', dom), re.search(r'data-charts-loaded="(\d+)"', dom)
    assert charts and loaded and loaded.group(1) == charts.group(1), dom[:500]
    assert 'data-missing-glyphs="0"' in dom, dom[:500]  # every Chinese label had a glyph
    tags_table = dom[dom.index("Interests (aspects)") :]
    assert CHINESE_WORD.search(tags_table)
    assert 0.01 < dark < 0.9
    assert Path(out / "interest_tags.png").stat().st_size > 1000


def test_the_demo_replays_shoppers_and_prints_their_health(shop):
    replayed = re.search(r"replayed: (.*)", shop.log)
    assert replayed and "/reviews 200" in replayed.group(1), shop.log[-3000:]
    # a tiny model that did not beat its baseline is not served: its routes say 503, nothing else fails
    codes = {part.rsplit(":", 1)[0].split()[-1] for part in replayed.group(1).split(", ")}
    assert codes <= {"200", "503"}, replayed.group(1)
    assert "online quality from late labels" in shop.log
