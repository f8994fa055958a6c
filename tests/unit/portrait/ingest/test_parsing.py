import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from portrait.ingest.parsing import (
    MAX_TEXT_CHARS,
    EventKeys,
    RowError,
    decode_line,
    is_cdnow_header,
    is_events_header,
    located_user,
    parse_amazon_review,
    parse_cdnow_purchase,
    parse_event_csv,
)
from portrait.privacy.pseudonyms import pseudonymize

KEY = b"k" * 32
GOOD = {
    "reviewerID": "A2IBPI20UZIR0U",
    "asin": "1384719342",
    "reviewerName": "cassandra tu",
    "helpful": [1, 2],
    "reviewText": "Works. Mail me: a@b.com",
    "overall": 5.0,
    "summary": "good",
    "unixReviewTime": 1393545600,
    "reviewTime": "02 28, 2014",
}


def line(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def test_amazon_2014_line():
    row = parse_amazon_review(line(), KEY)
    assert row.user_id == pseudonymize("A2IBPI20UZIR0U", KEY)
    assert (row.item_id, row.rating, row.helpful_votes, row.total_votes) == ("1384719342", 5, 1, 2)
    assert row.text == "Works. Mail me: [email]"
    assert row.event_timestamp == datetime(2014, 2, 28, tzinfo=timezone.utc)
    assert "cassandra" not in repr(row)


def test_amazon_2018_line_counts_votes_and_allows_missing_text():
    row = parse_amazon_review(line(helpful=..., vote="1,204", reviewText=..., summary=...), KEY)
    assert (row.helpful_votes, row.total_votes, row.text, row.summary) == (1204, None, "", "")


def test_empty_text_is_kept_not_rejected():
    assert parse_amazon_review(line(reviewText=""), KEY).text == ""


def test_review_time_is_a_fallback_for_unix_time():
    row = parse_amazon_review(line(unixReviewTime=...), KEY)
    assert row.event_timestamp.date().isoformat() == "2014-02-28"


@pytest.mark.parametrize(
    "raw, reason",
    [
        ('{"reviewerID": "A1", "asin": ', "bad JSON"),
        ("[1, 2]", "not an object"),
        ("", "empty line"),
        (line(reviewerID=...), "missing field reviewerID"),
        (line(asin=""), "missing field asin"),
        (line(overall=...), "missing field overall"),
        (line(overall=6), "outside 1-5"),
        (line(overall=0), "outside 1-5"),
        (line(overall=3.5), "outside 1-5"),
        (line(overall="five"), "not a number"),
        (line(unixReviewTime="soon"), "unparseable time"),
        (line(unixReviewTime=99999999999999), "unparseable time"),
        (line(unixReviewTime=100), "outside 1990-01-01"),
        (line(unixReviewTime=..., reviewTime=...), "missing field unixReviewTime"),
        (line(reviewText="x" * (MAX_TEXT_CHARS + 1)), "over the 50,000 limit"),
        (line(reviewText="a\u0000b"), "NUL"),
        (line(helpful=[3, 1]), "helpful is not"),
        (line(reviewerID=123.5), "not a string"),
    ],
)
def test_amazon_malformed_lines_name_their_problem(raw, reason):
    with pytest.raises(RowError, match=reason):
        parse_amazon_review(raw, KEY)


def test_invalid_utf8_and_nul_bytes():
    with pytest.raises(RowError, match="invalid UTF-8 at byte 3"):
        decode_line(b'{"a\xff": 1}\n')
    with pytest.raises(RowError, match="NUL byte"):
        decode_line(b"ab\x00c\n")
    assert decode_line("caf\u00e9\r\n".encode()) == "caf\u00e9"


def test_cdnow_line_and_header():
    assert is_cdnow_header(" customer_id  date number_of_cds  dollar_value")
    row = parse_cdnow_purchase(" 00003 19970330  2   20.76", KEY)
    assert row.user_id == pseudonymize("00003", KEY) and row.item_id is None
    assert (row.event_type, row.quantity, row.amount) == ("purchase", 2, Decimal("20.76"))
    assert row.event_timestamp == datetime(1997, 3, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("00003 19970330 2", "expected 4 fields"),
        ("00003 19971330 2 20.76", "unparseable time"),
        ("00003 19970330 two 20.76", "not an integer"),
        ("00003 19970330 0 20.76", "below 1"),
        ("00003 19970330 2 -1", "out of range"),
        ("00003 19970330 2 NaN", "out of range"),
    ],
)
def test_cdnow_malformed(raw, reason):
    with pytest.raises(RowError, match=reason):
        parse_cdnow_purchase(raw, KEY)


def test_events_csv():
    assert is_events_header("user_id,item_id,event_type,event_timestamp,quantity,amount")
    row = parse_event_csv("u1,B000,cart,2014-03-01T10:00:00Z,2,19.90", KEY)
    assert (row.item_id, row.event_type, row.quantity, row.amount) == ("B000", "cart", 2, Decimal("19.90"))
    row = parse_event_csv("u1,B000,view,1393545600,,", KEY)
    assert (row.quantity, row.amount) == (1, None)
    assert row.event_timestamp == datetime(2014, 2, 28, tzinfo=timezone.utc)
    # naive times are UTC
    assert parse_event_csv("u1,,view,2014-03-01 10:00,,", KEY).event_timestamp.tzinfo is not None


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("u1,B000,like,2014-03-01,1,", "not one of"),
        (",B000,view,2014-03-01,1,", "missing field user_id"),
        ("u1,B000,view,yesterday,1,", "unparseable time"),
        ("u1,B000,view,2014-03-01", "expected 6 fields"),
    ],
)
def test_events_malformed(raw, reason):
    with pytest.raises(RowError, match=reason):
        parse_event_csv(raw, KEY)


def test_event_keys_count_identical_purchases_of_a_day():
    keys = EventKeys()
    a = parse_cdnow_purchase("00002 19970112 1 12.00", KEY)
    b = parse_cdnow_purchase("00002 19970112 5 77.00", KEY)
    k = [keys.key(r) for r in (a, a, b, a)]
    assert len(set(k)) == 4 and k[0].endswith("#0") and k[1].endswith("#1") and k[3].endswith("#2")
    # the same file read again gives the same keys
    again = EventKeys()
    assert [again.key(r) for r in (a, a, b, a)] == k


def test_a_reason_never_quotes_the_raw_id_and_names_the_pseudonym():
    line = json.dumps({**GOOD, "reviewerID": "SECRET42", "overall": "SECRET42"})
    with pytest.raises(RowError) as caught:
        parse_amazon_review(line, KEY)
    assert "SECRET42" not in str(caught.value)
    assert caught.value.user_id == pseudonymize("SECRET42", KEY)
    with pytest.raises(RowError) as caught, located_user(12345, KEY):
        raise RowError("bad value 12345")
    assert str(caught.value) == f"bad value {pseudonymize('12345', KEY)}"
