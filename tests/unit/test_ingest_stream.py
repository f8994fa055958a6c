import gzip
import io

from portrait import parsing
from portrait.ingest import IngestCounts, open_source, parse_batches, read_lines

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
    assert [n for b in batches for n, _ in b.rows] == [2, 4]


def test_counts_reconcile():
    c = IngestCounts(read=10, loaded=6, rejected=3, duplicates=1)
    assert c.reconciles and "ok" in c.summary()
    assert not IngestCounts(read=10, loaded=6).reconciles
