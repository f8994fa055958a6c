"""A small SYNTHETIC Chinese review export for tests and the demo: real review
texts and labels from online_shopping_10_cats (../shared/data), with generated
buyer ids, item ids per category and times, written the way a Chinese shop's
export looks (Chinese column names, GB18030/GBK, local times, 0/1 labels). The
texts and labels are real; the users, items and times are made up."""

from __future__ import annotations

import csv
import hashlib
import io
import random
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

from portrait.text.placeholders import SAMPLE_PLACEHOLDER_SHARE, SAMPLE_PLACEHOLDERS

COLUMNS = ("买家ID", "商品编号", "类目", "评分", "评价时间", "评价内容")
# what `portrait ingest reviews` needs to read it
MAPPING = "user=买家ID,item=商品编号,rating=评分,time=评价时间,text=评价内容"
OPTIONS = ["--rating-scale", "0-1", "--time-format", "%Y/%m/%d %H:%M", "--timezone", "Asia/Shanghai"]
FILE_NAME = "synthetic_zh_reviews_export.csv"


def import_spec():
    """MAPPING and OPTIONS as the generic import's ImportSpec (what the CLI builds from them)."""
    from portrait.ingest.imports import REVIEW_FIELDS, ImportSpec, parse_mapping, parse_scale

    options = dict(zip(OPTIONS[::2], OPTIONS[1::2]))
    return ImportSpec(
        columns=parse_mapping(MAPPING, REVIEW_FIELDS),
        time_format=options["--time-format"],
        timezone=options["--timezone"],
        rating_scale=parse_scale(options["--rating-scale"]),
    )


def source_rows(data_dir: Path) -> list[dict]:
    path = data_dir / "online_shopping_10_cats" / "online_shopping_10_cats.zip"
    with zipfile.ZipFile(path) as z, z.open("online_shopping_10_cats.csv") as f:
        rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8-sig")))
    return [r for r in rows if (r.get("review") or "").strip()]


def write_export(data_dir: Path, out: Path, *, reviews: int = 3000, users: int = 400, seed: int = 0) -> Path:
    """Reviews sampled evenly over the 10 categories (deterministic for a seed);
    buyers drawn with a long tail (a few review a lot), 20 items per category,
    times over 2021-2023. One review per buyer and item, as a shop allows. A share of
    the texts (SAMPLE_PLACEHOLDER_SHARE) is a platform placeholder, as in a real export:
    the buyer gave stars and wrote nothing."""
    placeholders = SAMPLE_PLACEHOLDERS["zh"]
    rng = random.Random(seed)
    by_category: dict[str, list[dict]] = {}
    for row in source_rows(data_dir):
        by_category.setdefault(row["cat"], []).append(row)
    per_category = reviews // len(by_category)
    start = datetime(2021, 1, 1)
    seen: set[tuple[str, str]] = set()
    lines = []
    for n, (category, rows) in enumerate(sorted(by_category.items())):
        slug = hashlib.sha256(category.encode()).hexdigest()[:6]
        for row in rng.sample(rows, min(per_category, len(rows))):
            for _ in range(20):  # a buyer who has not yet reviewed the drawn item
                buyer = f"zh-buyer-{int(users * rng.random() ** 2):04d}"
                item = f"{slug}-{n:02d}{rng.randrange(20):02d}"
                if (buyer, item) not in seen:
                    break
            else:
                continue
            seen.add((buyer, item))
            when = start + timedelta(minutes=rng.randrange(3 * 365 * 24 * 60))
            text = row["review"].strip()
            if rng.random() < SAMPLE_PLACEHOLDER_SHARE:
                text = placeholders[rng.randrange(len(placeholders))][1]
            lines.append((buyer, item, category, row["label"], when.strftime("%Y/%m/%d %H:%M"), text))
    lines.sort(key=lambda line: line[4])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="gb18030", newline="") as f:  # GB18030: GBK and the characters GBK lacks
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(lines)
    return out
