"""A shop's own exports through the generic import, in both profiles: CSV in GBK,
TSV with a BOM, JSON lines, Parquet; quoted newlines, exact duplicate rows, bad
rows; exact counts and idempotent reruns."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from portrait.ingest.imports import EVENT_FIELDS, REVIEW_FIELDS, ImportSpec, parse_mapping
from portrait.privacy.pseudonyms import pseudonymize
from tests.helpers.data import TEST_KEY
from tests.helpers.ingest import scalar

pytestmark = pytest.mark.integration
COLUMNS = {
    "user": "买家ID",
    "item": "商品编号",
    "rating": "评分",
    "time": "评价时间",
    "text": "评价内容",
    "title": "标题",
}
GOOD = [
    ("buyer01", "SKU-1", "10", "2021/05/01 09:30", "质量很好，物流也快", "好评"),
    ("buyer02", "SKU-1", "2", "2021/05/02 10:00", "用了两天就坏了\n客服不回复", "差评"),
    ("buyer03", "SKU-2", "8", "2021/05/03 11:15", "联系我 13912345678", ""),
    ("buyer01", "SKU-2", "6", "2021/05/04 12:00", 'with "quotes", and commas', "一般"),
]
BAD = [
    ("", "SKU-3", "10", "2021/05/05 09:00", "no user", ""),  # missing user
    ("buyer04", "SKU-3", "11", "2021/05/05 09:00", "off the scale", ""),
    ("buyer05", "SKU-3", "7", "05-05-2021", "wrong time format", ""),
    ("buyer06", "SKU-3", "好", "2021/05/05 09:00", "rating not a number", ""),
]


def _spec(**kw) -> ImportSpec:
    return ImportSpec(
        columns=parse_mapping(",".join(f"{k}={v}" for k, v in COLUMNS.items()), REVIEW_FIELDS),
        time_format="%Y/%m/%d %H:%M",
        timezone="Asia/Shanghai",
        rating_scale=(1, 10),
        **kw,
    )


def _csv(rows, delimiter=",") -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    writer.writerow(list(COLUMNS.values()))
    writer.writerows(rows)
    return out.getvalue()


def _ingest(db, path, spec, source="reviews"):
    from portrait.ingest.loader import ingest_file

    return ingest_file(db[1], source, path, TEST_KEY, batch_size=3, progress=False, spec=spec)


def _check(db, counts, run_id, duplicates=1):
    settings, engine = db
    assert counts.reconciles, counts.summary()
    assert (counts.loaded, counts.rejected, counts.duplicates) == (len(GOOD), len(BAD), duplicates), counts.summary()
    assert scalar(engine, "SELECT count(*) FROM reviews") == len(GOOD)
    u1 = pseudonymize("buyer01", TEST_KEY)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT item_id, rating FROM reviews WHERE user_id = :u"), {"u": u1}).all())
        reasons = set(
            conn.execute(sa.text("SELECT reason FROM ingest_rejects WHERE run_id = :r"), {"r": run_id}).scalars()
        )
    assert rows == {"SKU-1": 5, "SKU-2": 3}  # 10 -> 5, 6 -> 3 on 1-10
    ts = scalar(engine, "SELECT min(event_timestamp) FROM reviews")
    assert ts.isoformat().startswith("2021-05-01T01:30:00")  # 09:30 Asia/Shanghai
    assert scalar(engine, "SELECT text FROM reviews WHERE item_id = 'SKU-2' AND rating = 4") == "联系我 [phone]"
    assert "\n" in scalar(engine, "SELECT text FROM reviews WHERE rating = 1")  # the quoted newline survives
    languages = scalar(engine, "SELECT string_agg(language, ',' ORDER BY event_timestamp) FROM reviews")
    assert languages == "zh,zh,zh,en"  # detected per review at ingest
    assert any("missing field 买家ID" in r for r in reasons) and any("outside the declared scale" in r for r in reasons)
    assert any("does not match" in r for r in reasons) and any("评分 is not a number" in r for r in reasons)
    assert not any("buyer0" in r for r in reasons)


def test_gbk_csv_with_quoted_newlines_duplicates_and_bad_rows(db, tmp_path):
    path = tmp_path / "店铺评价导出.csv"
    path.write_bytes(_csv(GOOD + [GOOD[0]] + BAD).encode("gbk"))  # an exact duplicate row, as real exports have
    run_id, counts = _ingest(db, path, _spec())
    _check(db, counts, run_id)
    _, again = _ingest(db, path, _spec())  # idempotent
    assert (again.loaded, again.duplicates, again.rejected) == (0, len(GOOD) + 1, len(BAD))


def test_tsv_with_a_bom(db, tmp_path):
    path = tmp_path / "export.tsv"
    path.write_bytes(b"\xef\xbb\xbf" + _csv(GOOD + [GOOD[1]] + BAD, delimiter="\t").encode())
    run_id, counts = _ingest(db, path, _spec())
    _check(db, counts, run_id)


def test_json_lines_in_gb18030(db, tmp_path):
    path = tmp_path / "export.jsonl"
    lines = [json.dumps(dict(zip(COLUMNS.values(), r)), ensure_ascii=False) for r in GOOD + [GOOD[2]] + BAD]
    path.write_bytes(("\n".join(lines) + "\n").encode("gb18030"))
    run_id, counts = _ingest(db, path, _spec())
    _check(db, counts, run_id)


def test_parquet(db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = GOOD + [GOOD[3]] + BAD
    table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(COLUMNS.values())})
    path = tmp_path / "export.parquet"
    pq.write_table(table, path)
    run_id, counts = _ingest(db, path, _spec())
    _check(db, counts, run_id)


def test_an_events_export_with_its_own_columns(db, tmp_path):
    settings, engine = db
    path = tmp_path / "行为.csv"
    path.write_text(
        "会员,商品,行为,时间,数量,金额\n"
        "m1,SKU-1,VIEW,2021-05-01 09:00:00,,\n"
        "m1,SKU-1,purchase,2021-05-01 09:05:00,2,199.00\n"
        "m1,SKU-1,like,2021-05-01 09:06:00,,\n"
        "m1,SKU-1,purchase,2021-05-01 09:05:00,2,199.00\n",
        encoding="gbk",
    )
    spec = ImportSpec(
        columns=parse_mapping("user=会员,item=商品,type=行为,time=时间,quantity=数量,amount=金额", EVENT_FIELDS),
        timezone="Asia/Shanghai",
    )
    _, counts = _ingest(db, path, spec, source="events")
    assert counts.reconciles and (counts.loaded, counts.rejected) == (3, 1)  # the repeated purchase is a second one
    assert scalar(engine, "SELECT sum(amount) FROM events") == 398
