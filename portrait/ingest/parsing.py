"""Parsing and validation of raw input lines: pure functions, no I/O.

Each parser takes one decoded line and returns a row ready to load, or raises
RowError naming what is wrong with it. User ids are pseudonymized here, before
a row can reach any table or log."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from portrait.privacy.pseudonyms import mask_contacts, pseudonymize
from portrait.text.language import detect_language
from portrait.text.placeholders import fingerprint, placeholder_reason

MAX_LINE_BYTES = 1_000_000
MAX_TEXT_CHARS = 50_000
MAX_ID_CHARS = 256
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
EVENT_TYPES = ("view", "cart", "purchase", "review")
EVENTS_CSV_HEADER = ("user_id", "item_id", "event_type", "event_timestamp", "quantity", "amount")
CDNOW_HEADER = ("customer_id", "date", "number_of_cds", "dollar_value")


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


class RowError(ValueError):
    """A malformed row; the message is the reason stored in ingest_rejects, and
    user_id the pseudonym of the row's user where the parser located it."""

    def __init__(self, reason: str, user_id: str | None = None) -> None:
        super().__init__(reason)
        self.user_id = user_id


@contextmanager
def located_user(raw_id: object, key: bytes) -> Iterator[str | None]:
    """Within the block, a RowError names the row's user by pseudonym, and the raw
    id never survives into its reason (a reason may quote a field's value)."""
    raw = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else ""
    pseudonym = pseudonymize(raw, key) if raw else None
    try:
        yield pseudonym
    except RowError as err:
        reason = str(err)
        if raw and pseudonym:
            reason = reason.replace(raw, pseudonym)
        raise RowError(reason, err.user_id or pseudonym) from None


def shown(value: object, limit: int = 60) -> str:
    """A value quoted in a reason, cut short: reasons are for people, not copies of data."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True, slots=True)
class ReviewRow:
    user_id: str
    item_id: str
    rating: int
    summary: str
    text: str
    helpful_votes: int
    total_votes: int | None
    event_timestamp: datetime
    language: str | None = None  # ISO 639-1 of summary + text (portrait.text.language)
    placeholder: str | None = None  # why the text is not the shopper's (portrait.text.placeholders)
    text_fingerprint: bytes | None = None  # the normalised text's hash (the template rule counts it)


def review_row(**fields) -> ReviewRow:
    """A ReviewRow with its language detected from its (masked) summary and text, and
    whether the text is a placeholder (the template rule needs the corpus: at load)."""
    summary, text = fields["summary"], fields["text"]
    return ReviewRow(
        **fields,
        language=detect_language(f"{summary} {text}"),
        placeholder=placeholder_reason(summary, text),
        text_fingerprint=fingerprint(text),
    )


@dataclass(frozen=True, slots=True)
class EventRow:
    user_id: str
    item_id: str | None
    event_type: str
    quantity: int | None
    amount: Decimal | None
    event_timestamp: datetime

    def content_key(self) -> str:
        """Identity of the event's content; `EventKeys` adds the occurrence number."""
        amount = "" if self.amount is None else f"{self.amount:.2f}"
        quantity = "" if self.quantity is None else str(self.quantity)
        return f"{self.event_type}:{self.user_id}:{self.item_id or ''}:{self.event_timestamp.isoformat()}:{quantity}:{amount}"


def decode_line(raw: bytes) -> str:
    """UTF-8 text of a line without its line ending; RowError for invalid bytes."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RowError(f"invalid UTF-8 at byte {err.start}") from None
    text = text.rstrip("\r\n")
    if "\x00" in text:
        raise RowError("NUL byte in line")
    return text


def _clean_text(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RowError(f"{field} is not a string")
    if "\x00" in value:
        raise RowError(f"{field} contains a NUL character")
    if _SURROGATE_RE.search(value):
        raise RowError(f"{field} contains an invalid code point (a lone UTF-16 surrogate)")
    if len(value) > MAX_TEXT_CHARS:
        raise RowError(f"{field} is {len(value):,} characters, over the {MAX_TEXT_CHARS:,} limit")
    return mask_contacts(value.strip())


def _text_id(value: str, field: str) -> str:
    """An id as stored: bounded, and free of control characters (they break logs and CSV)."""
    if len(value) > MAX_ID_CHARS:
        raise RowError(f"{field} is {len(value):,} characters, over the {MAX_ID_CHARS} limit")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise RowError(f"{field} contains a control character or an invalid code point")
    return value


def _required_id(record: dict, field: str) -> str:
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise RowError(f"missing field {field}")
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise RowError(f"{field} is not a string")
    return _text_id(str(value).strip(), field)


def _unix_time(value: object, field: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RowError(f"unparseable time in {field}: {shown(value)}")
    try:
        seconds = float(value)
        ts = datetime.fromtimestamp(seconds, tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise RowError(f"unparseable time in {field}: {shown(value)}") from None
    return _plausible(ts, field)


def _plausible(ts: datetime, field: str) -> datetime:
    if ts < EARLIEST or ts > datetime.now(timezone.utc) + timedelta(days=1):
        raise RowError(f"{field} {ts.date().isoformat()} is outside 1990-01-01 .. today")
    return ts


def _rating(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RowError(f"rating is not a number: {shown(value)}")
    try:
        number = float(value)
    except ValueError:
        raise RowError(f"rating is not a number: {shown(value)}") from None
    if not number.is_integer() or not 1 <= number <= 5:
        raise RowError(f"rating {shown(value)} is outside 1-5")
    return int(number)


def _votes(record: dict) -> tuple[int, int | None]:
    """Amazon 2014: helpful = [helpful, total]; Amazon 2018: vote = "1,234" (helpful only)."""
    helpful = record.get("helpful")
    if helpful is not None:
        if (
            not isinstance(helpful, list)
            or len(helpful) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in helpful)
            or helpful[0] > helpful[1]
        ):
            raise RowError(f"helpful is not [helpful, total] votes: {shown(helpful)}")
        return helpful[0], helpful[1]
    vote = record.get("vote")
    if vote is None:
        return 0, None
    try:
        count = int(str(vote).replace(",", ""))
    except ValueError:
        raise RowError(f"vote is not a count: {shown(vote)}") from None
    if count < 0:
        raise RowError(f"vote is negative: {shown(vote)}")
    return count, None


def json_object(line: str) -> dict:
    """One JSON-lines record; RowError for an empty line, bad or too deeply nested JSON,
    or a value that is not an object."""
    if not line.strip():
        raise RowError("empty line")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise RowError(f"bad JSON: {err.msg} at column {err.colno}") from None
    except RecursionError:
        raise RowError("nested too deep to parse") from None
    if not isinstance(record, dict):
        raise RowError("bad JSON: not an object")
    return record


def parse_amazon_review(line: str, key: bytes) -> ReviewRow:
    """One line of the Amazon 2014 or 2018 review dumps. The reviewer's name is dropped."""
    record = json_object(line)
    with located_user(record.get("reviewerID"), key) as pseudonym:
        user = _required_id(record, "reviewerID")
        item = _required_id(record, "asin")
        if "overall" not in record:
            raise RowError("missing field overall")
        rating = _rating(record["overall"])
        if "unixReviewTime" in record:
            ts = _unix_time(record["unixReviewTime"], "unixReviewTime")
        elif "reviewTime" in record:
            try:
                ts = _plausible(
                    datetime.strptime(str(record["reviewTime"]), "%m %d, %Y").replace(tzinfo=timezone.utc),
                    "reviewTime",
                )
            except ValueError:
                raise RowError(f"unparseable time in reviewTime: {shown(record['reviewTime'])}") from None
        else:
            raise RowError("missing field unixReviewTime")
        helpful, total = _votes(record)
        return review_row(
            user_id=pseudonym or pseudonymize(user, key),
            item_id=item,
            rating=rating,
            summary=_clean_text(record.get("summary"), "summary"),
            text=_clean_text(record.get("reviewText"), "reviewText"),
            helpful_votes=helpful,
            total_votes=total,
            event_timestamp=ts,
        )


def _int_field(value: str, field: str, *, minimum: int = 0) -> int:
    try:
        number = int(value)
    except ValueError:
        raise RowError(f"{field} is not an integer: {shown(value)}") from None
    if number < minimum:
        raise RowError(f"{field} {number} is below {minimum}")
    return number


def _amount(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise RowError(f"amount is not a number: {shown(value)}") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise RowError(f"amount {shown(value)} is out of range")
    return amount.quantize(Decimal("0.01"))


def is_cdnow_header(line: str) -> bool:
    return tuple(line.split()) == CDNOW_HEADER


def parse_cdnow_purchase(line: str, key: bytes) -> EventRow:
    """One CDNOW line: customer_id date(YYYYMMDD) number_of_cds dollar_value."""
    fields = line.split()
    if not fields:
        raise RowError("empty line")
    if len(fields) != 4:
        raise RowError(f"expected 4 fields (customer_id date number_of_cds dollar_value), got {len(fields)}")
    customer, date, cds, dollars = fields
    with located_user(customer, key) as pseudonym:
        _text_id(customer, "customer_id")
        try:
            ts = _plausible(datetime.strptime(date, "%Y%m%d").replace(tzinfo=timezone.utc), "date")
        except ValueError:
            raise RowError(f"unparseable time in date: {shown(date)}") from None
        return EventRow(
            user_id=pseudonym or pseudonymize(customer, key),
            item_id=None,
            event_type="purchase",
            quantity=_int_field(cds, "number_of_cds", minimum=1),
            amount=_amount(dollars),
            event_timestamp=ts,
        )


def _iso_or_unix(value: str, field: str, naive_tz: tzinfo = timezone.utc) -> datetime:
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return _unix_time(value, field)
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"unparseable time in {field}: {shown(value)}") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=naive_tz)  # documented: naive times are UTC unless the import says otherwise
    return _plausible(ts.astimezone(timezone.utc), field)


def csv_reader(lines: Iterable[str], **kwargs: Any) -> Iterator[list[str]]:
    """csv.reader with room for a field as long as a line: csv's default 131,072
    characters is below MAX_LINE_BYTES, and a long field must parse so that its
    length check (MAX_TEXT_CHARS) rejects it with a reason. The limit is the csv
    module's, process-wide: raised when a CSV is read (never lowered), not at import."""
    if csv.field_size_limit() < MAX_LINE_BYTES:
        csv.field_size_limit(MAX_LINE_BYTES)
    return csv.reader(lines, **kwargs)


def split_csv_line(line: str) -> list[str]:
    """One CSV line's fields; RowError for a line the csv module cannot read (a bare
    carriage return inside an unquoted field), so that it is set aside, not fatal."""
    try:
        return next(csv_reader([line]), [])
    except csv.Error as err:
        raise RowError(f"unreadable CSV line: {err}") from None


def is_events_header(line: str) -> bool:
    try:
        return tuple(f.strip() for f in split_csv_line(line)) == EVENTS_CSV_HEADER
    except RowError:  # not a header: the line itself is set aside as a row
        return False


def parse_event_csv(line: str, key: bytes) -> EventRow:
    """One line of the generic events CSV:
    user_id,item_id,event_type,event_timestamp,quantity,amount
    (item_id, quantity and amount may be empty; quantity defaults to 1)."""
    if not line.strip():
        raise RowError("empty line")
    fields = [f.strip() for f in split_csv_line(line)]
    if len(fields) != len(EVENTS_CSV_HEADER):
        raise RowError(f"expected {len(EVENTS_CSV_HEADER)} fields ({','.join(EVENTS_CSV_HEADER)}), got {len(fields)}")
    user, item, event_type, ts, quantity, amount = fields
    with located_user(user, key) as pseudonym:
        if not user:
            raise RowError("missing field user_id")
        _text_id(user, "user_id")
        if event_type not in EVENT_TYPES:
            raise RowError(f"event_type {shown(event_type)} is not one of {', '.join(EVENT_TYPES)}")
        if not ts:
            raise RowError("missing field event_timestamp")
        return EventRow(
            user_id=pseudonym or pseudonymize(user, key),
            item_id=_text_id(item, "item_id") or None,
            event_type=event_type,
            quantity=_int_field(quantity, "quantity") if quantity else 1,
            amount=_amount(amount) if amount else None,
            event_timestamp=_iso_or_unix(ts, "event_timestamp"),
        )


class EventKeys:
    """Natural keys for events that carry no id of their own (a purchase log).

    Identical rows of the same user and day are distinct purchases (CDNOW has 234
    such pairs), so the key is the row's content plus its occurrence number within
    that user-day. Only the current user-day is remembered: constant memory on
    logs grouped by user and time, as such logs are."""

    def __init__(self) -> None:
        self._group: tuple[str, str] | None = None
        self._seen: dict[str, int] = {}

    def key(self, row: EventRow) -> str:
        group = (row.user_id, row.event_timestamp.date().isoformat())
        if group != self._group:
            self._group, self._seen = group, {}
        content = row.content_key()
        n = self._seen.get(content, 0)
        self._seen[content] = n + 1
        return f"{content}#{n}"
