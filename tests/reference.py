"""Plain-Python reference implementation of ecompipe's validation and KPIs.

This module is the independent oracle the pipeline is tested against. It is written from
``/work/shared/DESIGN.md`` ("Data contracts" and "KPIs (exact definitions)") alone, uses only
the standard library, and never imports ``ecompipe``. It favours obviousness over speed.

Public API::

    validate_batch(files, max_error_rate=Decimal("0.05")) -> BatchResult
    merge(state, batch) -> BatchResult
    kpis(orders, items, products) -> (order_metrics, category_metrics)
    kpis_as_json(order_metrics, category_metrics) -> dict   # the shape of expected.json

Decisions taken where the specification is silent are listed in ``DECISIONS`` below and
repeated next to the code they affect.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path

DECISIONS = """
- A file is `unreadable` when its bytes are not UTF-8 (a leading BOM is allowed), when it
  contains a NUL character, or when strict CSV parsing fails (an unterminated quote, or a
  character other than the delimiter/line end right after a closing quote).
- A file is also `unreadable` when its framing is ambiguous: a quote that is not at the start
  of a value (right after the delimiter or a line end) nor doubled inside a quoted value, a CR
  outside quoted values that does not start a CRLF, or lines ending with both LF and CRLF.
  (Readers disagree on such files; which line a later row starts on is then unknowable.)
- An empty line (or a line holding only whitespace) is not a row; it still counts as a
  physical line.
- The header is the first non-empty line. A 0-byte file, or one with only empty lines, is
  `no_rows`. Checks run in this order: unreadable, no header (no_rows), missing_column,
  no data rows (no_rows), error_rate.
- A header naming the same column twice: the first occurrence is used.
- Verdict `rows` counts every non-empty data row (bad-shaped ones and duplicates included);
  for a missing_column file `rows` is still counted and `bad_rows` is 0 (values not checked);
  for an unreadable file both are 0.
- error_rate rejects when bad_rows > max_error_rate * rows (exactly 5 % is still accepted).
- A row whose field count differs from the header's gives one Reject (column "",
  reason bad_row_shape) and its values are not checked.
- Values are trimmed with str.strip() (all surrounding whitespace), then checked.
- Integers must fit a signed 64-bit integer, else bad_int. Negative ids are valid ints.
- Money fits DECIMAL(18, 6) by value: after half-up rounding to 6 decimals its absolute
  value must be < 10**12 (so leading zeros do not count as integer digits), else bad_decimal.
  `5.` and `.5` are good; a sign alone or `.` alone is bad.
- `negative` is judged on the value rounded to 6 decimals (`-0.00` and `-0.0000001` are 0,
  not negative); a zero is stored as 0.000000.
- Timestamps: `T` and `Z` must be upper case; `UTC` must be upper case and preceded by
  exactly one space; no space before a numeric offset; a fraction needs seconds; offsets must
  be < 24 h with minutes < 60; second 60 (leap second) is bad; a result outside years
  1..9999 after conversion to UTC is bad.
- conflicting_duplicate Rejects name the key column (order_id for orders, id otherwise).
- A row with bad values does not claim its key: a later good row with that key is kept.
- Files of a dataset are sorted by their path string (S3 key order), not by Path ordering.
- Rejects come out in processing order: datasets in contract order (orders, order_items,
  products), files sorted, rows by line, columns in contract order within a row.
- duplicates_dropped has an entry (possibly 0) for every dataset present in `files`.
- Text values (sku, category) are kept as trimmed, case-sensitive; only status is lowercased.
"""

DATASETS = ("orders", "order_items", "products")

# dataset -> (key column, [(column, kind), ...]) in contract order.
CONTRACTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "orders": (
        "order_id",
        [
            ("order_id", "int"),
            ("user_id", "int"),
            ("created_at", "timestamp"),
            ("status", "status"),
        ],
    ),
    "order_items": (
        "id",
        [("id", "int"), ("order_id", "int"), ("product_id", "int"), ("sale_price", "money")],
    ),
    "products": (
        "id",
        [
            ("id", "int"),
            ("sku", "text"),
            ("cost", "money"),
            ("category", "text"),
            ("retail_price", "money"),
        ],
    ),
}

KNOWN_STATUSES = frozenset(
    {"processing", "shipped", "delivered", "complete", "cancelled", "returned"}
)

ROW_REASONS = (
    "missing_value",
    "bad_int",
    "bad_decimal",
    "negative",
    "bad_timestamp",
    "conflicting_duplicate",
    "bad_row_shape",
)
FILE_REASONS = ("unreadable", "missing_column", "no_rows", "error_rate")

MICRO = Decimal("0.000001")
CENT = Decimal("0.01")
RATE_PLACES = 4
MONEY_PLACES = 2
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MONEY_LIMIT = Decimal(10) ** 12


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True)
class Reject:
    """One problem in one row."""

    file: str  # the file path as given
    line: int  # 1-based physical line where the row starts (the header is line 1)
    column: str  # contract column name (lowercase), or "" for a row-level problem
    reason: str  # one of ROW_REASONS


@dataclass
class FileVerdict:
    """The verdict on one file."""

    file: str
    dataset: str  # orders | order_items | products
    accepted: bool
    reason: str | None  # None when accepted, else one of FILE_REASONS
    rows: int  # data rows read
    bad_rows: int  # rows with at least one bad value (duplicates not counted)


@dataclass
class BatchResult:
    """Everything a batch (or the merged state of several batches) produced."""

    verdicts: list[FileVerdict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    # order_id -> (user_id, created_at UTC aware, status lowercased)
    orders: dict[int, tuple[int, datetime, str]] = field(default_factory=dict)
    # id -> (order_id, product_id, sale_price)
    items: dict[int, tuple[int, int, Decimal]] = field(default_factory=dict)
    # id -> (sku, cost, category, retail_price)
    products: dict[int, tuple[str, Decimal, str, Decimal]] = field(default_factory=dict)


# --------------------------------------------------------------------------- value parsers


class BadValue(ValueError):
    """A field value that breaks its column's type; ``reason`` is a row reason code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_INT_RE = re.compile(r"[+-]?[0-9]+")
_MONEY_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_TS_RE = re.compile(
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})"
    r"[T ]"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2})"
    r"(?::(?P<second>[0-9]{2})(?:\.(?P<fraction>[0-9]+))?)?"
    r"(?P<zone>Z| UTC|[+-][0-9]{2}:[0-9]{2}|[+-][0-9]{4})?"
)


def parse_int(text: str) -> int:
    """Parse a trimmed integer value: ``[+-]?[0-9]+`` (ASCII), within signed 64 bits."""
    if text == "":
        raise BadValue("missing_value")
    if not _INT_RE.fullmatch(text):
        raise BadValue("bad_int")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise BadValue("bad_int")
    return value


def parse_money(text: str) -> Decimal:
    """Parse a trimmed money value into a Decimal rounded half-up to 6 decimals.

    Accepts ``[+-]?digits[.digits]``, ``digits.`` and ``.digits`` (ASCII only). Anything else
    (NaN, inf, exponents, thousands separators, currency signs, non-ASCII digits) is
    ``bad_decimal``; so is a value that does not fit DECIMAL(18, 6). A value below zero is
    ``negative``.
    """
    if text == "":
        raise BadValue("missing_value")
    if not _MONEY_RE.fullmatch(text):
        raise BadValue("bad_decimal")
    with localcontext() as ctx:
        ctx.prec = 200  # far more than any value that can fit; quantize must never overflow
        try:
            value = Decimal(text).quantize(MICRO, rounding=ROUND_HALF_UP)
        except InvalidOperation:  # only for absurdly large inputs, which cannot fit anyway
            raise BadValue("bad_decimal") from None
    if abs(value) >= MONEY_LIMIT:
        raise BadValue("bad_decimal")
    if value < 0:
        raise BadValue("negative")
    if value == 0:
        value = Decimal("0.000000")  # drop the sign of a negative zero
    return value


def parse_timestamp(text: str) -> datetime:
    """Parse a trimmed ISO-8601 date-and-time into an aware UTC datetime.

    ``YYYY-MM-DD`` + ``T`` or space + ``HH:MM`` or ``HH:MM:SS[.fraction]`` + optional ``Z``,
    ``+HH:MM``, ``-HH:MM``, ``+HHMM``, ``-HHMM`` or `` UTC``. No zone means UTC. Fraction digits
    beyond microseconds are truncated.
    """
    if text == "":
        raise BadValue("missing_value")
    match = _TS_RE.fullmatch(text)
    if not match:
        raise BadValue("bad_timestamp")
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    zone = match["zone"]
    try:
        if zone is None or zone in ("Z", " UTC"):
            tz = UTC
        else:
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:])
            if hours > 23 or minutes > 59:
                raise BadValue("bad_timestamp")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        local = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"] or 0),
            int(fraction),
            tzinfo=tz,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):  # month 13, hour 25, Feb 30, year 0, out of range
        raise BadValue("bad_timestamp") from None


def parse_text(text: str) -> str:
    """A required text value: anything non-empty after trimming."""
    if text == "":
        raise BadValue("missing_value")
    return text


def parse_status(text: str) -> str:
    """A required status: lowercased (compared case-insensitively). Unknown ones are kept."""
    return parse_text(text).lower()


PARSERS = {
    "int": parse_int,
    "money": parse_money,
    "timestamp": parse_timestamp,
    "text": parse_text,
    "status": parse_status,
}


# --------------------------------------------------------------------------- file reading


@dataclass
class _Row:
    """One data row of a file after checking: its typed values or its problems."""

    line: int
    values: tuple | None  # typed values in contract column order, None when bad
    problems: list[tuple[str, str]]  # (column, reason)


def _is_blank(fields: list[str]) -> bool:
    """An empty (or whitespace-only) physical line: not a row."""
    return not fields or (len(fields) == 1 and fields[0].strip() == "")


def _physical_rows(text: str) -> list[tuple[int, list[str]]]:
    """Split CSV text into (start line, fields) for every non-blank row.

    Raises csv.Error when the text is not well-formed CSV.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    previous_end = 0
    for fields in reader:
        start = previous_end + 1
        previous_end = reader.line_num
        if not _is_blank(fields):
            rows.append((start, fields))
    return rows


def _ambiguous_framing(text: str) -> bool:
    """The framing rule of DECISIONS, one character at a time."""
    quoted = False
    previous = "\n"
    endings = set()
    i = 0
    while i < len(text):
        char = text[i]
        following = text[i + 1 : i + 2]
        if quoted:
            if char == '"':
                if following == '"':
                    i += 2
                    continue
                if following not in ("", ",", "\n", "\r"):
                    return True
                quoted = False
        elif char == '"':
            if previous not in (",", "\n"):
                return True
            quoted = True
        elif char == "\r":
            if following != "\n":
                return True
            endings.add("CRLF")
            i += 2
            previous = "\n"
            continue
        elif char == "\n":
            endings.add("LF")
        previous = char
        i += 1
    return quoted or len(endings) > 1


def _check_row(
    fields: list[str], positions: dict[str, int], columns: list[tuple[str, str]]
) -> _Row:
    """Type-check one row of the right shape (line filled in by the caller)."""
    values = []
    problems = []
    for column, kind in columns:
        try:
            values.append(PARSERS[kind](fields[positions[column]].strip()))
        except BadValue as bad:
            problems.append((column, bad.reason))
    return _Row(line=0, values=None if problems else tuple(values), problems=problems)


def check_file(path: Path, dataset: str, max_error_rate: Decimal) -> tuple[FileVerdict, list[_Row]]:
    """Read and check one file against its dataset's contract.

    Returns the verdict and, for an accepted file, its rows in file order (empty otherwise).
    """
    name = str(path)
    _, columns = CONTRACTS[dataset]

    def verdict(reason: str | None, rows: int = 0, bad_rows: int = 0) -> FileVerdict:
        return FileVerdict(name, dataset, reason is None, reason, rows, bad_rows)

    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
        if "\x00" in text:
            return verdict("unreadable"), []
        if _ambiguous_framing(text):
            return verdict("unreadable"), []
        physical = _physical_rows(text)
    except (UnicodeDecodeError, csv.Error, OSError):
        return verdict("unreadable"), []

    if not physical:
        return verdict("no_rows"), []
    _, header = physical[0]
    data = physical[1:]

    positions: dict[str, int] = {}
    for index, raw_name in enumerate(header):
        positions.setdefault(raw_name.strip().lower(), index)
    if any(column not in positions for column, _ in columns):
        return verdict("missing_column", rows=len(data)), []
    if not data:
        return verdict("no_rows"), []

    rows = []
    for line, fields in data:
        if len(fields) != len(header):
            row = _Row(line=line, values=None, problems=[("", "bad_row_shape")])
        else:
            row = _check_row(fields, positions, columns)
            row.line = line
        rows.append(row)

    bad_rows = sum(1 for row in rows if row.problems)
    if Decimal(bad_rows) > max_error_rate * len(rows):
        return verdict("error_rate", rows=len(rows), bad_rows=bad_rows), []
    return verdict(None, rows=len(rows), bad_rows=bad_rows), rows


# --------------------------------------------------------------------------- batches


def validate_batch(
    files: dict[str, list[Path]], max_error_rate: Decimal = Decimal("0.05")
) -> BatchResult:
    """Validate one batch: dataset -> list of CSV paths.

    Files of a dataset are processed in sorted path order, rows in file order. Rejected files
    contribute nothing but their verdict. In accepted files, bad rows become Rejects; good rows
    are de-duplicated by key across all of the dataset's files (an exact repeat is dropped and
    counted, a different row with a seen key is a conflicting_duplicate; the first one stays).
    """
    unknown = set(files) - set(DATASETS)
    if unknown:
        raise ValueError(f"unknown datasets: {sorted(unknown)}")
    max_error_rate = Decimal(str(max_error_rate))

    result = BatchResult()
    tables = {"orders": result.orders, "order_items": result.items, "products": result.products}
    for dataset in DATASETS:
        if dataset not in files:
            continue
        key_column, columns = CONTRACTS[dataset]
        key_index = [column for column, _ in columns].index(key_column)
        result.duplicates_dropped[dataset] = 0
        seen: dict[int, tuple] = {}  # key -> full typed row of the first good row
        for path in sorted(files[dataset], key=str):
            verdict, rows = check_file(path, dataset, max_error_rate)
            result.verdicts.append(verdict)
            for row in rows:
                if row.problems:
                    for column, reason in row.problems:
                        result.rejects.append(Reject(str(path), row.line, column, reason))
                    continue
                assert row.values is not None
                key = row.values[key_index]
                if key in seen:
                    if seen[key] == row.values:
                        result.duplicates_dropped[dataset] += 1
                    else:
                        result.rejects.append(
                            Reject(str(path), row.line, key_column, "conflicting_duplicate")
                        )
                    continue
                seen[key] = row.values
                tables[dataset][key] = row.values[:key_index] + row.values[key_index + 1 :]
    return result


def merge(state: BatchResult | None, batch: BatchResult) -> BatchResult:
    """Fold a batch into the state so far; a later row replaces an earlier one by key.

    Verdicts and rejects are concatenated, duplicate counts added. Neither input is modified.
    """
    if state is None:
        state = BatchResult()
    duplicates = dict(state.duplicates_dropped)
    for dataset, count in batch.duplicates_dropped.items():
        duplicates[dataset] = duplicates.get(dataset, 0) + count
    return BatchResult(
        verdicts=[*state.verdicts, *batch.verdicts],
        rejects=[*state.rejects, *batch.rejects],
        duplicates_dropped=duplicates,
        orders={**state.orders, **batch.orders},
        items={**state.items, **batch.items},
        products={**state.products, **batch.products},
    )


# --------------------------------------------------------------------------- KPIs


def round_half_up(value: Decimal, places: int) -> Decimal:
    """Round a Decimal half-up (away from zero on a tie) to ``places`` decimals."""
    with localcontext() as ctx:
        ctx.prec = 200
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def divide_half_up(numerator: Decimal | int, denominator: int, places: int) -> Decimal:
    """Exact ``numerator / denominator`` rounded half-up to ``places`` decimals.

    Done in integers so that no intermediate rounding can ever move a tie.
    """
    if denominator <= 0:
        raise ZeroDivisionError("denominator must be positive")
    exact = Decimal(numerator)
    sign, digits, exponent = exact.as_tuple()
    assert isinstance(exponent, int)
    magnitude = int("".join(map(str, digits)) or "0")
    # |numerator| = magnitude * 10**exponent; we want round(|numerator| * 10**places / denominator).
    shift = exponent + places
    top = magnitude * 10**shift if shift >= 0 else magnitude
    bottom = denominator if shift >= 0 else denominator * 10**-shift
    quotient, remainder = divmod(top, bottom)
    if 2 * remainder >= bottom:
        quotient += 1
    with localcontext() as ctx:
        ctx.prec = 200
        result = Decimal(quotient).scaleb(-places)
    return -result if sign and quotient else result


def kpis(
    orders: dict[int, tuple[int, datetime, str]],
    items: dict[int, tuple[int, int, Decimal]],
    products: dict[int, tuple[str, Decimal, str, Decimal]],
) -> tuple[dict[date, dict], dict[tuple[str, date], dict]]:
    """Daily KPIs over the current state, exactly as DESIGN.md defines them.

    Returns ``(order_metrics, category_metrics)``::

        order_metrics[order_date] = {"total_orders": int, "total_revenue": Decimal 2dp,
            "total_items_sold": int, "return_rate": Decimal 4dp, "unique_customers": int}
        category_metrics[(category, order_date)] = {"daily_revenue": Decimal 2dp,
            "avg_order_value": Decimal 2dp, "avg_return_rate": Decimal 4dp}

    order_date is the UTC date of created_at. Items whose order is absent are ignored; items
    whose product is absent count in order metrics only. Rounding happens at output only.
    """
    # order_date -> accumulators
    day_orders: dict[date, set[int]] = {}
    day_revenue: dict[date, Decimal] = {}
    day_items: dict[date, int] = {}
    # (category, order_date) -> accumulators
    cat_orders: dict[tuple[str, date], set[int]] = {}
    cat_revenue: dict[tuple[str, date], Decimal] = {}

    with localcontext() as ctx:
        ctx.prec = 200  # sums stay exact
        for order_id, product_id, sale_price in items.values():
            if order_id not in orders:
                continue  # waiting for its order
            created_at = orders[order_id][1]
            if created_at.tzinfo is not None:  # naive means UTC already
                created_at = created_at.astimezone(UTC)
            order_date = created_at.date()
            day_orders.setdefault(order_date, set()).add(order_id)
            day_revenue[order_date] = day_revenue.get(order_date, Decimal(0)) + sale_price
            day_items[order_date] = day_items.get(order_date, 0) + 1
            if product_id not in products:
                continue  # waiting for its product (category metrics only)
            key = (products[product_id][2], order_date)
            cat_orders.setdefault(key, set()).add(order_id)
            cat_revenue[key] = cat_revenue.get(key, Decimal(0)) + sale_price

    def returned(order_ids: set[int]) -> int:
        return sum(1 for order_id in order_ids if orders[order_id][2] == "returned")

    order_metrics: dict[date, dict] = {}
    for order_date, order_ids in day_orders.items():
        order_metrics[order_date] = {
            "total_orders": len(order_ids),
            "total_revenue": round_half_up(day_revenue[order_date], MONEY_PLACES),
            "total_items_sold": day_items[order_date],
            "return_rate": divide_half_up(returned(order_ids), len(order_ids), RATE_PLACES),
            "unique_customers": len({orders[order_id][0] for order_id in order_ids}),
        }

    category_metrics: dict[tuple[str, date], dict] = {}
    for key, order_ids in cat_orders.items():
        category_metrics[key] = {
            "daily_revenue": round_half_up(cat_revenue[key], MONEY_PLACES),
            "avg_order_value": divide_half_up(cat_revenue[key], len(order_ids), MONEY_PLACES),
            "avg_return_rate": divide_half_up(returned(order_ids), len(order_ids), RATE_PLACES),
        }
    return order_metrics, category_metrics


def kpis_as_json(
    order_metrics: dict[date, dict], category_metrics: dict[tuple[str, date], dict]
) -> dict:
    """The KPIs in the JSON shape of ``tests/fixtures/hand/expected.json``.

    Lists sorted by order_date (and category first for category metrics); dates as ISO
    strings, money and rates as strings, counts as ints.
    """

    def plain(value: object) -> object:
        return str(value) if isinstance(value, Decimal) else value

    return {
        "order_metrics": [
            {"order_date": day.isoformat(), **{k: plain(v) for k, v in order_metrics[day].items()}}
            for day in sorted(order_metrics)
        ],
        "category_metrics": [
            {
                "category": category,
                "order_date": day.isoformat(),
                **{k: plain(v) for k, v in category_metrics[(category, day)].items()},
            }
            for category, day in sorted(category_metrics)
        ],
    }
