"""The generic import's pure parts: mapping, scales, encodings, times, records."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest

from portrait.ingest.imports import (
    EVENT_FIELDS,
    REVIEW_FIELDS,
    ImportSpec,
    MappingError,
    detect_encoding,
    parse_mapping,
    parse_review_record,
    parse_scale,
    parse_time,
    records,
    scale_rating,
)
from portrait.ingest.parsing import RowError
from portrait.privacy.pseudonyms import pseudonymize

KEY = b"k" * 32
MAP = "user=买家,item=商品,rating=评分,time=时间,text=内容"


def test_mapping_names_every_required_field_once():
    assert parse_mapping(MAP, REVIEW_FIELDS)["user"] == "买家"
    assert parse_mapping("user=u,type=t,time=ts", EVENT_FIELDS) == {"user": "u", "type": "t", "time": "ts"}
    for bad, message in [
        ("user=a,item=b,rating=c", "no column for time"),
        ("user=a,item=b,rating=c,time=d,colour=e", "unknown field 'colour'"),
        ("user=a,user=b,item=b,rating=c,time=d", "mapped twice"),
        ("user,item=b,rating=c,time=d", "is not field=column"),
    ]:
        with pytest.raises(MappingError, match=message):
            parse_mapping(bad, REVIEW_FIELDS)


@pytest.mark.parametrize(
    ("scale", "value", "stars"),
    [
        ("1-5", "4", 4),
        ("1-10", "10", 5),
        ("1-10", "1", 1),
        ("1-10", "6", 3),
        ("0-1", "1", 5),
        ("0-1", 0, 1),
        ("0-100", 80, 4),
        ("0-100", 87.5, 5),
    ],
)
def test_ratings_map_onto_1_to_5(scale, value, stars):
    assert scale_rating(value, "r", parse_scale(scale)) == stars


def test_ratings_off_the_scale_or_not_numbers_are_rejected():
    for value, message in [("11", "outside the declared scale 1-10"), ("abc", "not a number"), ("", "missing field")]:
        with pytest.raises(RowError, match=message):
            scale_rating(value, "r", (1, 10))
    with pytest.raises(MappingError):
        parse_scale("5-1")


def test_encodings_are_detected():
    text = "买家,评分\n张三,5\n"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(text.encode("gbk")) == "gb18030"
    assert detect_encoding(b"\xef\xbb\xbf" + text.encode()) == "utf-8-sig"
    assert detect_encoding(text.encode("utf-8")[:5]) == "utf-8"  # a character cut at the sample's end
    assert detect_encoding(b"plain ascii") == "utf-8"


def test_times_in_any_declared_convention():
    spec = ImportSpec(columns={}, time_format="%Y/%m/%d %H:%M", timezone="Asia/Shanghai")
    assert parse_time("2014/03/01 08:00", "t", spec) == datetime(2014, 3, 1, 0, 0, tzinfo=timezone.utc)
    iso = ImportSpec(columns={}, timezone="Asia/Shanghai")
    assert parse_time("2014-03-01T08:00:00", "t", iso) == datetime(2014, 3, 1, 0, 0, tzinfo=timezone.utc)
    assert parse_time("2014-03-01T08:00:00+00:00", "t", iso) == datetime(2014, 3, 1, 8, 0, tzinfo=timezone.utc)
    assert parse_time("1393632000", "t", iso) == datetime(2014, 3, 1, tzinfo=timezone.utc)
    with pytest.raises(RowError, match="does not match"):
        parse_time("2014-03-01", "t", spec)
    with pytest.raises(MappingError, match="unknown time zone"):
        ImportSpec(columns={}, timezone="Mars/Olympus")


def _records(data: bytes, name: str, **spec):
    path = __import__("pathlib").Path(name)
    columns = parse_mapping(MAP, REVIEW_FIELDS)
    return list(records(path, io.BufferedReader(io.BytesIO(data)), ImportSpec(columns=columns, **spec)))


def test_csv_records_with_quoted_newlines_in_gbk():
    data = '买家,商品,评分,时间,内容\nu1,B1,5,2014-03-01,"很好\n第二行"\nu2,B2,1,2014-03-02,差\n'.encode("gbk")
    out = _records(data, "export.csv")
    assert [r[1]["内容"] for r in out] == ["很好\n第二行", "差"]
    assert [r[0] for r in out] == [3, 4]  # the line each record ends on


def test_csv_records_that_do_not_fit_are_rejected_with_reasons():
    data = "买家,商品,评分,时间,内容\nu1,B1,5\n,,,,\nu3,B3,4,2014-03-02,ok\n".encode()
    out = _records(data, "export.tsv", delimiter=",")
    assert isinstance(out[0][1], RowError) and "expected 5 fields" in str(out[0][1])
    assert isinstance(out[1][1], RowError) and "empty record" in str(out[1][1])
    assert out[2][1]["买家"] == "u3"


def test_a_header_without_the_mapped_columns_fails_the_run_with_the_header_named():
    with pytest.raises(MappingError, match="has no column 内容"):
        _records("买家,商品,评分,时间\n".encode(), "export.csv")


def test_a_record_becomes_a_review_row():
    spec = ImportSpec(columns=parse_mapping(MAP + ",helpful=有用", REVIEW_FIELDS), rating_scale=(1, 10))
    record = {"买家": "张三", "商品": "B1", "评分": "9", "时间": "2014-03-01", "内容": "电话13912345678", "有用": "3"}
    row = parse_review_record(record, spec, KEY)
    assert row.user_id == pseudonymize("张三", KEY) and row.rating == 5 and row.helpful_votes == 3
    assert row.text == "电话[phone]"
    with pytest.raises(RowError) as caught:
        parse_review_record({**record, "评分": "张三"}, spec, KEY)
    assert "张三" not in str(caught.value) and caught.value.user_id == row.user_id


def _export(lines: list[str]) -> list:
    spec = ImportSpec(columns=parse_mapping("user=u,item=i,rating=r,time=t,text=x", REVIEW_FIELDS))
    body = ("u,i,r,t,x\n" + "".join(lines)).encode()
    return list(records(Path("export.csv"), io.BytesIO(body), spec))


def _record(n: int, text: str) -> str:
    return f"user{n},item{n},5,2021-01-{1 + n % 28:02d},{text}\n"


def test_an_unclosed_quote_costs_one_record_not_the_rest_of_the_file():
    """41 records, the 4th opens a quote that never closes: the 4th is set aside with
    the reason and the 37 after it load as themselves (none inside its text)."""
    lines = [_record(n, "fine") for n in range(41)]
    lines[3] = _record(3, '"it never closes, and swallows')
    got = _export(lines)
    assert len(got) == 41
    rejects = [(n, r) for n, r, _ in got if isinstance(r, RowError)]
    assert [n for n, _ in rejects] == [5]  # line 5: the header is line 1
    assert "quoted field opened on line 5" in str(rejects[0][1]) and "resumes at line 6" in str(rejects[0][1])
    rows = [r for _, r, _ in got if not isinstance(r, RowError)]
    assert [r["u"] for r in rows] == [f"user{n}" for n in range(41) if n != 3]
    assert all("user" not in r["x"] for r in rows)


def test_a_quote_that_closes_far_below_is_caught_by_the_records_inside_it():
    """The open quote closes at a later record's own quote: the lines in between read
    as records of their own, so the first is set aside and reading resumes after it."""
    lines = [_record(n, "fine") for n in range(10)]
    lines[2] = _record(2, '"opens here')
    lines[7] = _record(7, 'and "quotes" here')
    got = _export(lines)
    rejects = [n for n, r, _ in got if isinstance(r, RowError)]
    assert rejects[0] == 4 and "runs into line 5" in str(got[2][1])
    loaded = [r["u"] for _, r, _ in got if not isinstance(r, RowError)]
    assert loaded[:2] == ["user0", "user1"] and "user3" in loaded and "user6" in loaded


def test_multi_line_texts_still_load_whole():
    lines = [_record(0, '"line one\nline two, with a comma\n\nline four"'), _record(1, "next")]
    got = _export(lines)
    assert [r["x"] for _, r, _ in got] == ["line one\nline two, with a comma\n\nline four", "next"]
    assert [n for n, _, _ in got] == [5, 6]  # the line each record ends on


def test_a_quote_open_past_the_line_limit_is_set_aside():
    from portrait.ingest.imports import MAX_RECORD_LINES

    lines = [_record(0, '"' + "x\n" * (MAX_RECORD_LINES + 5)), _record(1, "after")]
    got = _export(lines)
    assert isinstance(got[0][1], RowError) and f"within {MAX_RECORD_LINES} lines" in str(got[0][1])
    assert got[-1][1]["u"] == "user1"  # resynchronised: the later record loads as itself
