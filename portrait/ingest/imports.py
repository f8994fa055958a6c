"""Generic import of a shop's own exports: reviews (and events) in CSV/TSV (any
delimiter, quoted multi-line fields), JSON lines or Parquet, with the shop's own
column names, encoding (UTF-8, GBK/GB18030, a BOM), time format and rating scale.

A mapping names the columns: `user=buyer_id,item=sku,rating=stars,time=created,
text=content[,title=headline,helpful=useful]` (reviews) or `user=...,item=...,
type=...,time=...[,quantity=...,amount=...]` (events). Records stream in constant
memory; each one becomes a row or a reject with its reason, through the same
loader, pseudonymization and masking as every other source (portrait.ingest.loader)."""

from __future__ import annotations

import codecs
import collections
import csv
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from portrait.ingest import parsing
from portrait.ingest.lines import read_lines
from portrait.ingest.parsing import EventRow, ReviewRow, RowError, located_user, shown
from portrait.privacy.pseudonyms import pseudonymize

# field -> required?
REVIEW_FIELDS = {
    "user": True,
    "item": True,
    "rating": True,
    "time": True,
    "text": False,
    "title": False,
    "helpful": False,
}
EVENT_FIELDS = {"user": True, "item": False, "type": True, "time": True, "quantity": False, "amount": False}
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_SUFFIXES.update({".parquet": "parquet", ".pq": "parquet"})
_UNDECODABLE_RE = re.compile("[\udc80-\udcff]")  # bytes the encoding could not decode (surrogateescape)


class MappingError(ValueError):
    """The mapping or an option is wrong; the message says which and how to fix it."""


def parse_mapping(text: str, fields: dict[str, bool]) -> dict[str, str]:
    """`field=column,...` -> {field: column}; every required field must be named."""
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, column = part.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not column:
            raise MappingError(f"{part!r} is not field=column")
        if name not in fields:
            raise MappingError(f"unknown field {name!r}; the fields are {', '.join(fields)}")
        if name in mapping:
            raise MappingError(f"field {name!r} is mapped twice")
        mapping[name] = column
    missing = [f for f, required in fields.items() if required and f not in mapping]
    if missing:
        raise MappingError(f"the mapping names no column for {', '.join(missing)}")
    return mapping


def parse_scale(text: str) -> tuple[float, float]:
    """'1-10' -> (1, 10): the export's rating scale, mapped linearly onto 1-5."""
    m = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?)\s*-\s*(-?\d+(?:\.\d+)?)\s*", text)
    if not m or float(m.group(1)) >= float(m.group(2)):
        raise MappingError(f"rating scale {text!r} is not LOW-HIGH with LOW < HIGH (e.g. 1-5, 0-10, 0-1)")
    return float(m.group(1)), float(m.group(2))


@dataclass(frozen=True)
class ImportSpec:
    """How to read one export: its columns, format and conventions."""

    columns: dict[str, str]
    format: str | None = None  # None: from the file name
    delimiter: str | None = None  # None: ',' for csv, tab for tsv
    encoding: str = "auto"  # auto: BOM, else UTF-8 if it decodes, else GB18030 (a superset of GBK)
    time_format: str | None = None  # a strftime format; None: ISO 8601 or Unix seconds
    timezone: str = "UTC"  # for naive times
    rating_scale: tuple[float, float] = (1.0, 5.0)
    naive_tz: tzinfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            object.__setattr__(self, "naive_tz", timezone.utc if self.timezone == "UTC" else ZoneInfo(self.timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise MappingError(f"unknown time zone {self.timezone!r} (an IANA name such as Asia/Shanghai)") from None
        if self.format is not None and self.format not in FORMATS:
            raise MappingError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")
        if self.encoding != "auto":
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise MappingError(f"unknown encoding {self.encoding!r}") from None


def file_format(path: Path, spec: ImportSpec) -> str:
    if spec.format:
        return spec.format
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".gzip")]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise MappingError(f"cannot tell the format of {path.name} from its name: pass --format ({', '.join(FORMATS)})")
    return fmt


def detect_encoding(sample: bytes) -> str:
    """A BOM names it; else UTF-8 if the sample decodes (a multi-byte character cut
    at the sample's end is fine), else GB18030, which reads GBK and GB2312 too."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8", "gb18030"):
        try:
            codecs.getincrementaldecoder(encoding)().decode(sample, final=False)
            return encoding
        except UnicodeDecodeError:
            continue
    return "utf-8"  # undecodable either way: its rows are rejected with the reason


Record = tuple[int, dict[str, Any] | RowError, str]  # (line or record number, the record or why not, raw text)


def records(path: Path, stream: BinaryIO, spec: ImportSpec) -> Iterator[Record]:
    fmt = file_format(path, spec)
    if fmt == "parquet":
        yield from _parquet_records(path, spec)
        return
    encoding = spec.encoding
    if encoding == "auto":
        encoding = detect_encoding(stream.peek(1 << 16)[: 1 << 16] if hasattr(stream, "peek") else b"")
    if encoding == "utf-8" and hasattr(stream, "peek") and stream.peek(3)[:3] == codecs.BOM_UTF8:
        encoding = "utf-8-sig"
    if fmt == "jsonl":
        yield from _jsonl_records(stream, encoding)
    else:
        yield from _csv_records(stream, encoding, spec.delimiter or ("\t" if fmt == "tsv" else ","), spec)


# A quoted field may span this many physical lines (multi-line review texts); a quote
# still open past it (or at the end of the file) is taken as one that never closes.
MAX_RECORD_LINES = 100


class _CsvLines:
    """A CSV's physical lines, decoded, fed to csv.reader one record at a time: it
    counts the lines each record takes, stops a record at MAX_RECORD_LINES, and takes
    lines back so that reading can resume right after a record set aside."""

    def __init__(self, stream: BinaryIO, encoding: str) -> None:
        self._source = read_lines(stream)
        self._back: collections.deque[tuple[int, str, bool]] = collections.deque()
        self.encoding = encoding
        self.taken: list[tuple[int, str, bool]] = []  # (line number, text, oversize) of this record
        self.cut = False  # this record wanted a line past the limit or the end of the file

    def begin(self) -> None:
        self.taken, self.cut = [], False

    def give_back(self, lines: list[tuple[int, str, bool]]) -> None:
        self._back.extendleft(reversed(lines))

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if len(self.taken) >= MAX_RECORD_LINES:
            self.cut = True
            raise StopIteration
        if self._back:
            line = self._back.popleft()
        else:
            try:
                number, raw, oversize = next(self._source)
            except StopIteration:
                self.cut = bool(self.taken)
                raise
            line = (number, raw.decode(self.encoding, errors="surrogateescape"), oversize)
        self.taken.append(line)
        return line[1]


def _csv_records(stream: BinaryIO, encoding: str, delimiter: str, spec: ImportSpec) -> Iterator[Record]:
    lines = _CsvLines(stream, encoding)
    header_row = _next_record(lines, delimiter)
    if header_row is None:
        return
    header = [h.strip().lstrip("\ufeff") for h in header_row]
    if len(set(header)) != len(header):
        raise MappingError(f"the header repeats a column name: {header}")
    missing = [c for c in spec.columns.values() if c not in header]
    if missing:
        raise MappingError(
            f"the header has no column {', '.join(missing)} (read as {encoding}, delimiter {delimiter!r}); "
            f"it has: {', '.join(header)[:300]}"
        )
    while True:
        try:
            row = _next_record(lines, delimiter)
        except csv.Error as err:  # e.g. a quoted field running past the size limit
            yield _set_aside(lines, f"unreadable CSV record: {err}")
            continue
        if row is None:
            return
        # a record is numbered by the line it ends on (a reject by the line set aside)
        number, raw = lines.taken[-1][0], "".join(text for _, text, _ in lines.taken)
        if problem := _runaway_quote(lines, header, delimiter, spec):
            yield _set_aside(lines, problem)
        elif any(oversize for _, _, oversize in lines.taken):
            yield number, RowError(f"line is over {parsing.MAX_LINE_BYTES:,} bytes"), raw[:1000]
        elif not any(f.strip() for f in row):
            yield number, RowError("empty record"), raw
        elif len(row) != len(header):
            yield number, RowError(f"expected {len(header)} fields (the header's), got {len(row)}"), raw
        elif bad := next((h for h, v in zip(header, row) if _UNDECODABLE_RE.search(v)), None):
            yield number, RowError(f"column {bad} holds bytes that are not valid {encoding}"), raw
        else:
            yield number, dict(zip(header, row)), raw


def _next_record(lines: _CsvLines, delimiter: str) -> list[str] | None:
    """The next record's fields (None at the end of the file); lines.taken holds its lines."""
    lines.begin()
    return next(parsing.csv_reader(lines, delimiter=delimiter), None)


def _runaway_quote(lines: _CsvLines, header: list[str], delimiter: str, spec: ImportSpec) -> str | None:
    """Why a record spanning several lines is a quote that never closed, or None: its
    quote is still open at the line limit or the end of the file, or one of its later
    lines reads as a whole record of its own (the header's width, a user and a valid
    time: a review's own line break does not look like that)."""
    first = lines.taken[0][0]
    if lines.cut:
        return (
            f"a quoted field opened on line {first} does not close within {MAX_RECORD_LINES} lines "
            f"or before the end of the file; set aside, reading resumes at line {first + 1}"
        )
    for number, text, _ in lines.taken[1:]:
        if _reads_as_record(text, header, delimiter, spec):
            return (
                f"a quoted field opened on line {first} runs into line {number}, which reads as a record "
                f"of its own; set aside, reading resumes at line {first + 1}"
            )
    return None


def _reads_as_record(text: str, header: list[str], delimiter: str, spec: ImportSpec) -> bool:
    fields = next(parsing.csv_reader([text], delimiter=delimiter), [])
    if len(fields) != len(header):
        return False
    record = dict(zip(header, fields))
    user, time_column = spec.columns.get("user"), spec.columns.get("time")
    if not user or not record.get(user, "").strip() or not time_column:
        return False
    try:
        parse_time(record.get(time_column), time_column, spec)
    except RowError:
        return False
    return True


def _set_aside(lines: _CsvLines, reason: str) -> Record:
    """Reject the record's first line and take its other lines back: reading resumes
    on the next line, so a runaway quote costs one record, not the rest of the file."""
    number, text, _ = lines.taken[0]
    lines.give_back(lines.taken[1:])
    return number, RowError(reason), text


def _jsonl_records(stream: BinaryIO, encoding: str) -> Iterator[Record]:
    for number, line, oversize in read_lines(stream):
        raw = line.decode(encoding, errors="replace").strip("\r\n\ufeff")
        if oversize:
            yield number, RowError(f"line is over {parsing.MAX_LINE_BYTES:,} bytes"), raw
            continue
        try:
            text = line.decode(encoding).strip("\r\n\ufeff")
        except UnicodeDecodeError as err:
            yield number, RowError(f"bytes not valid {encoding} at byte {err.start}"), raw
            continue
        try:
            yield number, parsing.json_object(text), raw
        except RowError as err:
            yield number, err, raw


def _parquet_records(path: Path, spec: ImportSpec) -> Iterator[Record]:
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    wanted = [c for c in spec.columns.values() if c in file.schema_arrow.names]
    missing = sorted(set(spec.columns.values()) - set(file.schema_arrow.names))
    if missing:
        raise MappingError(
            f"{path.name} has no column {', '.join(missing)}; it has {', '.join(file.schema_arrow.names)}"
        )
    number = 0
    for batch in file.iter_batches(batch_size=2048, columns=wanted):
        for record in batch.to_pylist():
            number += 1
            yield number, record, json.dumps(record, default=str, ensure_ascii=False)


# --- records -> rows -----------------------------------------------------------------


def _value(record: dict, column: str | None) -> Any:
    if column is None:
        return None
    value = record.get(column)
    return value.strip() if isinstance(value, str) else value


def _present(value: Any) -> bool:
    return value is not None and value != ""


def parse_time(value: Any, column: str, spec: ImportSpec) -> datetime:
    if isinstance(value, datetime):  # Parquet timestamps
        ts = value if value.tzinfo else value.replace(tzinfo=spec.naive_tz)
        return parsing._plausible(ts.astimezone(timezone.utc), column)
    if not _present(value):
        raise RowError(f"missing field {column}")
    if spec.time_format:
        try:
            ts = datetime.strptime(str(value), spec.time_format)
        except ValueError:
            raise RowError(f"time in {column} {shown(value)} does not match {spec.time_format!r}") from None
        ts = ts if ts.tzinfo else ts.replace(tzinfo=spec.naive_tz)
        return parsing._plausible(ts.astimezone(timezone.utc), column)
    return parsing._iso_or_unix(str(value), column, spec.naive_tz)


def scale_rating(value: Any, column: str, scale: tuple[float, float]) -> int:
    """The rating on the export's scale, mapped linearly onto 1-5 and rounded half up."""
    if isinstance(value, bool) or not _present(value):
        raise RowError(f"missing field {column}" if not _present(value) else f"{column} is not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RowError(f"{column} is not a number: {shown(value)}") from None
    low, high = scale
    if not low <= number <= high:
        raise RowError(f"{column} {shown(value)} is outside the declared scale {low:g}-{high:g}")
    return int(Decimal(1 + (number - low) * 4 / (high - low)).quantize(Decimal(1), rounding="ROUND_HALF_UP"))


def _count(value: Any, column: str) -> int:
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise RowError(f"{column} is not a count: {shown(value)}") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise RowError(f"{column} is not a count: {shown(value)}")
    return int(number)


def parse_review_record(record: dict, spec: ImportSpec, key: bytes) -> ReviewRow:
    c = spec.columns
    with located_user(_value(record, c["user"]), key) as pseudonym:
        user = parsing._required_id(record, c["user"])
        item = parsing._required_id(record, c["item"])
        rating = scale_rating(_value(record, c["rating"]), c["rating"], spec.rating_scale)
        ts = parse_time(_value(record, c["time"]), c["time"], spec)
        helpful = _value(record, c.get("helpful"))
        return parsing.review_row(
            user_id=pseudonym or pseudonymize(user, key),
            item_id=item,
            rating=rating,
            summary=parsing._clean_text(_value(record, c.get("title")), c.get("title", "title")),
            text=parsing._clean_text(_value(record, c.get("text")), c.get("text", "text")),
            helpful_votes=_count(helpful, c["helpful"]) if _present(helpful) else 0,
            total_votes=None,
            event_timestamp=ts,
        )


def parse_event_record(record: dict, spec: ImportSpec, key: bytes) -> EventRow:
    c = spec.columns
    with located_user(_value(record, c["user"]), key) as pseudonym:
        user = parsing._required_id(record, c["user"])
        event_type = str(_value(record, c["type"]) or "").lower()
        if event_type not in parsing.EVENT_TYPES:
            raise RowError(f"{c['type']} {shown(event_type)} is not one of {', '.join(parsing.EVENT_TYPES)}")
        item = _value(record, c.get("item"))
        quantity = _value(record, c.get("quantity"))
        amount = _value(record, c.get("amount"))
        return EventRow(
            user_id=pseudonym or pseudonymize(user, key),
            item_id=parsing._text_id(str(item), c["item"]) if _present(item) else None,
            event_type=event_type,
            quantity=_count(quantity, c["quantity"]) if _present(quantity) else 1,
            amount=parsing._amount(str(amount)) if _present(amount) else None,
            event_timestamp=parse_time(_value(record, c["time"]), c["time"], spec),
        )
