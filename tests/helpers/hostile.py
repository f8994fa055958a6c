"""A corpus of hostile input lines, per source format, each kind carrying a raw
user id of its own (HOSTILE...) so that a scan can prove none of them survives.

Every line here must be rejected with a reason; good lines around them must all land."""

from __future__ import annotations

import json

from portrait.ingest.parsing import MAX_LINE_BYTES


def _id(kind: str) -> str:
    return f"HOSTILE{kind.upper().replace('-', '')}X"


def amazon_bad_lines() -> dict[str, bytes]:
    def review(kind: str, **fields) -> dict:
        base = {
            "reviewerID": _id(kind),
            "asin": "B000HOSTILE",
            "reviewerName": "Hostile Name",
            "overall": 4.0,
            "summary": "ok",
            "reviewText": "fine",
            "unixReviewTime": 1393545600,
        }
        base.update(fields)
        return {k: v for k, v in base.items() if v is not ...}

    def line(kind: str, **fields) -> bytes:
        return json.dumps(review(kind, **fields)).encode() + b"\n"

    lines = {
        "truncated": line("truncated")[:60] + b"\n",
        "deep": b'{"reviewerID": "' + _id("deep").encode() + b'", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}\n",
        "no-reviewer": line("no-reviewer", reviewerID=...),
        "no-asin": line("no-asin", asin=...),
        "rating-9": line("rating-9", overall=9),
        "rating-text": line("rating-text", overall="abc"),
        "rating-bool": line("rating-bool", overall=True),
        "time-text": line("time-text", unixReviewTime="tomorrow"),
        "time-huge": line("time-huge", unixReviewTime=1e20),
        "time-1980": line("time-1980", unixReviewTime=315532800),
        "helpful-huge": line("helpful-huge", helpful=[2**40, 2**40]),
        "vote-huge": line("vote-huge", vote="99,999,999,999"),
        "helpful-shape": line("helpful-shape", helpful="lots"),
        "helpful-over-total": line("helpful-over-total", helpful=[5, 2]),
        "text-huge": line("text-huge", reviewText="x" * 60_000),
        "text-nul": line("text-nul", reviewText="a\x00b"),
        "text-surrogate": line("text-surrogate").replace(b'"fine"', b'"\\ud800 fine"'),
        "reviewer-list": line("reviewer-list", reviewerID=[_id("reviewer-list")], summary=_id("reviewer-list")),
        "numeric-id": json.dumps({**review("numeric-id", overall=0), "reviewerID": 987654321987}).encode() + b"\n",
        "python-literal": repr(review("python-literal")).encode() + b"\n",
        "escaped-key": line("escaped-key", overall=0).replace(b'"reviewerID"', b'"reviewer\\u0049D"'),
        "invalid-utf8": line("invalid-utf8").replace(b"fine", b"caf\xe9"),
        "raw-nul": line("raw-nul").replace(b"fine", b"fi\x00ne"),
        "not-object": json.dumps([_id("not-object"), 5]).encode() + b"\n",
        "asin-huge": line("asin-huge", asin="B" * 1000),
        "asin-control": line("asin-control", asin="B0\x01HOSTILE"),
        "over-line-limit": line("over-line-limit", reviewText="y" * (MAX_LINE_BYTES + 10)),
        "empty": b"\n",
    }
    return lines


def cdnow_bad_lines() -> dict[str, bytes]:
    def line(kind: str, date="19970101", cds="1", dollars="11.77", extra="") -> bytes:
        return f"{_id(kind)} {date} {cds} {dollars}{extra}\n".encode()

    return {
        "three-fields": f"{_id('three-fields')} 19970101 1\n".encode(),
        "five-fields": line("five-fields", extra=" 9"),
        "bad-date": line("bad-date", date="1997x101"),
        "date-1980": line("date-1980", date="19800101"),
        "date-future": line("date-future", date="29990101"),
        "date-iso": line("date-iso", date="1997-01-01"),
        "cds-text": line("cds-text", cds="x"),
        "cds-zero": line("cds-zero", cds="0"),
        "cds-huge": line("cds-huge", cds="99999999999"),
        "cds-fraction": line("cds-fraction", cds="1.5"),
        "dollars-text": line("dollars-text", dollars="abc"),
        "dollars-nan": line("dollars-nan", dollars="NaN"),
        "dollars-inf": line("dollars-inf", dollars="Infinity"),
        "dollars-negative": line("dollars-negative", dollars="-1"),
        "dollars-huge": line("dollars-huge", dollars="1e11"),
        "id-huge": f"{'7' * 300}{_id('id-huge')} 19970101 1 11.77\n".encode(),
        "id-control": f"{_id('id-control')}\x01 19970101 1 11.77\n".encode(),
        "invalid-utf8": line("invalid-utf8").replace(b"11.77", b"11.7\xff"),
        "raw-nul": line("raw-nul").replace(b"11.77", b"11\x00.77"),
        "over-line-limit": line("over-line-limit", extra=" " + "9" * (MAX_LINE_BYTES + 10)),
        "empty": b"\n",
    }


def events_bad_lines() -> dict[str, bytes]:
    def line(kind: str, item="B01", event_type="view", ts="2014-03-01T10:00:00Z", quantity="", amount="") -> bytes:
        return f"{_id(kind)},{item},{event_type},{ts},{quantity},{amount}\n".encode()

    return {
        "field-over-csv-limit": line("field-over-csv-limit", item="B" * 200_000),
        "quoted-id-comma": f'"{_id("quoted-id-comma")},HOSTILE2",B01,like,2014-03-01T10:00:00Z,,\n'.encode(),
        "four-fields": f"{_id('four-fields')},B01,view,2014-03-01T10:00:00Z\n".encode(),
        "event-like": line("event-like", event_type="like"),
        "no-user": b",B01,view,2014-03-01T10:00:00Z,,\n",
        "no-time": line("no-time", ts=""),
        "bad-time": line("bad-time", ts="yesterday"),
        "time-invalid-date": line("time-invalid-date", ts="2014-13-45T10:00:00Z"),
        "time-1980": line("time-1980", ts="1980-01-01T00:00:00Z"),
        "time-future": line("time-future", ts="2999-01-01T00:00:00Z"),
        "quantity-huge": line("quantity-huge", event_type="purchase", quantity="99999999999"),
        "quantity-negative": line("quantity-negative", quantity="-1"),
        "quantity-text": line("quantity-text", quantity="x"),
        "amount-text": line("amount-text", amount="abc"),
        "amount-huge": line("amount-huge", amount="1e12"),
        "unclosed-quote": f'"{_id("unclosed-quote")},B01,view,2014-03-01T10:00:00Z,,\n'.encode(),
        "item-huge": line("item-huge", item="I" * 300),
        "item-control": line("item-control", item="B\x0701"),
        "invalid-utf8": line("invalid-utf8").replace(b"B01", b"B\xff1"),
        "raw-nul": line("raw-nul").replace(b"B01", b"B\x0001"),
        "over-line-limit": line("over-line-limit", item="Z" * (MAX_LINE_BYTES + 10)),
        "empty": b"\n",
    }


def events_good_lines(n: int) -> list[bytes]:
    return [
        f"shopper{i % 37},B{i % 11:02d},{('view', 'cart', 'purchase')[i % 3]},2014-03-{1 + i % 28:02d}T10:{i % 60:02d}:00Z,"
        f"{1 + i % 3},{'' if i % 3 != 2 else f'{10 + i % 50}.90'}\n".encode()
        for i in range(n)
    ]


def hostile_ids() -> set[str]:
    """Every raw id the corpus uses (a scan must find none of them anywhere)."""
    kinds = set(amazon_bad_lines()) | set(cdnow_bad_lines()) | set(events_bad_lines())
    return {_id(k) for k in kinds} | {"987654321987", "HOSTILE2"}
