import gzip
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from portrait.ingest import parsing
from portrait.ingest.lines import open_source, read_lines
from portrait.ingest.loader import IngestCounts, parse_batches

KEY = b"k"


def test_gzip_is_detected_by_content(tmp_path):
    path = tmp_path / "reviews.json"  # no .gz suffix
    path.write_bytes(gzip.compress(b"a\nb\n"))
    raw, stream = open_source(path)
    assert [line for _, line, _ in read_lines(stream)] == [b"a\n", b"b\n"]
    raw.close()


def test_oversize_line_is_cut_and_flagged(monkeypatch):
    monkeypatch.setattr(parsing, "MAX_LINE_BYTES", 10)
    lines = list(read_lines(io.BytesIO(b"short\n" + b"x" * 35 + b"\nnext\n")))
    assert [(n, over) for n, _, over in lines] == [(1, False), (2, True), (3, False)]


def test_batches_split_rows_and_rejects_and_skip_the_header():
    data = b" customer_id  date number_of_cds  dollar_value\n00001 19970101 1 11.77\nbroken\n00002 19970112 1 12.00\n"
    batches = list(parse_batches("purchases", read_lines(io.BytesIO(data)), KEY, batch_size=2))
    assert [len(b) for b in batches] == [2, 1]
    rejects = [r for b in batches for r in b.rejects]
    assert [(r.line_number, r.reason) for r in rejects] == [
        (3, "expected 4 fields (customer_id date number_of_cds dollar_value), got 1")
    ]
    assert [n for b in batches for n, _, _ in b.rows] == [2, 4]


def test_counts_reconcile():
    c = IngestCounts(read=10, loaded=6, rejected=3, duplicates=1)
    assert c.reconciles and "ok" in c.summary()
    assert not IngestCounts(read=10, loaded=6).reconciles


# --- property: no mutation of a real line can end a run -----------------------------

_REAL = [
    b'{"reviewerID": "A2IBPI20UZIR0U", "asin": "1384719342", "reviewerName": "cassandra tu", "helpful": [0, 0], '
    b'"reviewText": "Not much to write about here", "overall": 5.0, "summary": "good", "unixReviewTime": 1393545600}\n',
    b"00001 19970101 1 11.77\n",
    b"shopper1,B01,purchase,2014-03-01T10:09:00Z,1,19.90\n",
]
_SOURCES = ("amazon-reviews", "purchases", "events")


@settings(max_examples=300, deadline=None)
@given(
    which=st.integers(0, 2),
    cut=st.integers(0, 300),
    insert=st.binary(max_size=12)
    | st.sampled_from([b"[" * 5000, b'"', b"\\", b"\x00", b"\xff", b",", b" ", b"9" * 30]),
    drop=st.integers(0, 20),
)
def test_any_mutation_of_a_real_line_is_a_row_or_a_reject(which, cut, insert, drop):
    line = _REAL[which]
    cut = min(cut, len(line) - 1)
    mutated = line[:cut] + insert + line[cut + drop :]
    batches = list(parse_batches(_SOURCES[which], read_lines(io.BytesIO(mutated)), KEY, batch_size=10))
    parsed = sum(len(b) for b in batches)
    lines = mutated.count(b"\n") + (0 if mutated.endswith(b"\n") else 1)
    assert parsed == lines  # each line is exactly one row or one reject: never lost, never an exception
    for reject in (r for b in batches for r in b.rejects):
        assert reject.reason and "A2IBPI20UZIR0U" not in reject.reason
