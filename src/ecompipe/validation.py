"""Contract checks as SQL, and the validation report.

The engine loads each file into a relation of text columns named after the contract columns,
plus ``_file_idx`` (position of the file in the dataset's key-ordered list) and ``_row`` (0-based
index of the row among the file's well-formed rows). The SQL built here turns that into typed
values and one problem code per bad value, then resolves duplicates. It is written once against
:class:`~ecompipe.dialect.Dialect`, so every engine enforces the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, NamedTuple

from ecompipe import trigger
from ecompipe.contracts import (
    KNOWN_STATUSES,
    MONEY_INT_DIGITS,
    MONEY_PRECISION,
    MONEY_SCALE,
    Column,
    ColumnType,
    Dataset,
    FileReason,
    Reason,
)
from ecompipe.dialect import Dialect, sql_string

# Values are trimmed of surrounding whitespace: every character Python's str.isspace() calls
# whitespace (tabs, NBSP, ideographic space...), so a value padded by a spreadsheet export is
# still read (tests/reference.py does the same). WHITESPACE is that set; WS is the same set as
# a regex class (RE2 and Java both read \x{...}).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
WS = (
    r"[\t-\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
)
INT_PATTERN = r"^WS*[+-]?0*[0-9]{1,19}WS*$".replace("WS", WS)
# Leading zeros are not digits of the value: 0000000000000.5 fits DECIMAL(18, 6).
MONEY_PATTERN = (
    r"^WS*[+-]?(0*[0-9]{1,INT}(\.[0-9]*)?|\.[0-9]+)WS*$".replace("INT", str(MONEY_INT_DIGITS))
).replace("WS", WS)
# date, T or space, HH:MM[:SS[.fraction]], then Z, +HH:MM, +HHMM or " UTC" (none means UTC).
# Matched against the trimmed value.
TIMESTAMP_PATTERN = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([01][0-9]|2[0-3]):([0-5][0-9])"
    r"(?::([0-5][0-9])(?:[.]([0-9]+))?)?"
    r"(?:Z| UTC|([+-])([01][0-9]|2[0-3]):?([0-5][0-9]))?$"
)
BLANK_PATTERN = f"^{WS}*$"
# A record of only whitespace, maybe in one pair of quotes, is no row, as a blank line is
# none (the reference agrees). The framing check lets nothing stand outside the quotes, so
# this test of a record's raw text agrees with one of its parsed value (the DuckDB engine's).
BLANK_RECORD_PATTERN = f'"?{WS}*"?'
_BLANK_RECORD = re.compile(f'"?[{re.escape(WHITESPACE)}]*"?')
# The same without surrounding whitespace: the common case, and a cheaper regex.
PLAIN_PATTERNS = {
    ColumnType.INT: r"^[+-]?[0-9]{1,19}$",
    ColumnType.MONEY: r"^[+-]?([0-9]{1,INT}(\.[0-9]*)?|\.[0-9]+)$".replace(
        "INT", str(MONEY_INT_DIGITS)
    ),
}
PATTERNS = {
    ColumnType.INT: INT_PATTERN,
    ColumnType.MONEY: MONEY_PATTERN,
    ColumnType.TIMESTAMP: TIMESTAMP_PATTERN,
}
BAD_REASON = {
    ColumnType.INT: Reason.BAD_INT,
    ColumnType.MONEY: Reason.BAD_DECIMAL,
    ColumnType.TIMESTAMP: Reason.BAD_TIMESTAMP,
}


def is_blank_record(text: str) -> bool:
    """Whether a record's text is blank: :data:`BLANK_RECORD_PATTERN`, in Python."""
    return _BLANK_RECORD.fullmatch(text) is not None


def parsed_expr(col: Column, d: Dialect) -> str:
    """SQL giving the typed value of ``col``, or NULL when it is missing or bad.

    The contract's pattern decides what is acceptable text; only then does the engine parse
    it (an engine's own casts accept more: exponents, underscores, hex, NaN).
    """
    raw = d.quote(col.name)
    if col.type is ColumnType.TEXT:
        v = f"nullif({d.strip(raw)}, '')"
        return f"lower({v})" if col.name == "status" else v
    if col.type is ColumnType.TIMESTAMP:
        v = d.strip(raw)
        return (
            f"CASE WHEN {d.regex_full_match(raw, TIMESTAMP_PATTERN)} "
            f"THEN {d.parse_timestamp_utc(raw)} "
            f"WHEN {d.regex_full_match(v, TIMESTAMP_PATTERN)} THEN {d.parse_timestamp_utc(v)} END"
        )
    # Plain ASCII values take the first branch; only the rare value padded with other
    # whitespace (tab, NBSP...) pays for the wider pattern and the strip.
    if col.type is ColumnType.INT:
        cast, padded = d.try_cast(raw, "BIGINT"), d.try_cast(d.strip(raw), "BIGINT")
        # An integer written as the engine writes it back (no + sign, no leading zero) is
        # one the pattern accepts; both engines spell text STRING. Checking that costs less
        # than the regex.
        canonical = f"WHEN CAST({cast} AS STRING) = {raw} THEN {cast} "
    else:
        cast, padded = d.parse_money(raw), d.parse_money(d.strip(raw))
        canonical = ""
    return (
        f"CASE {canonical}WHEN {d.regex_full_match(raw, PLAIN_PATTERNS[col.type])} THEN {cast} "
        f"WHEN {d.regex_full_match(raw, PATTERNS[col.type])} THEN {padded} END"
    )


def problem_expr(col: Column, parsed: str, d: Dialect) -> str:
    """SQL giving the reason code of a bad value in ``col``, or NULL when it is good.

    Good rows stop at the first branch, so the blank test only runs for the few bad ones.
    """
    raw = d.quote(col.name)
    bad = Reason.MISSING_VALUE if col.type is ColumnType.TEXT else BAD_REASON[col.type]
    extra = ""
    if col.type is ColumnType.MONEY:
        extra = f" WHEN {parsed} < 0 THEN '{Reason.NEGATIVE}'"
    elif col.type is ColumnType.TIMESTAMP:
        # An offset can carry 0001-01-01 or 9999-12-31 out of the years a date can have.
        extra = f" WHEN year({parsed}) NOT BETWEEN 1 AND 9999 THEN '{Reason.BAD_TIMESTAMP}'"
    return (
        f"CASE WHEN {parsed} IS NULL THEN CASE WHEN {raw} IS NULL OR "
        f"{d.regex_full_match(raw, BLANK_PATTERN)} THEN '{Reason.MISSING_VALUE}' "
        f"ELSE '{bad}' END{extra} END"
    )


def with_seconds(v: str) -> str:
    """``v`` (text the timestamp pattern accepted) with ':00' seconds added where absent.

    The pattern fixes the layout: 'YYYY-MM-DD HH:MM' is always the first 16 characters, so
    plain substrings do it without another regex pass.
    """
    return (
        f"CASE WHEN substr({v}, 17, 1) = ':' THEN {v} "
        f"ELSE concat(substr({v}, 1, 16), ':00', substr({v}, 17)) END"
    )


def portable_money(v: str, d: Dialect) -> str:
    """Exact DECIMAL(18, 6) rounded half-up, from text the money pattern accepted.

    For engines whose text-to-decimal cast does not round half-up: keep one more digit than
    the scale and round once, so float artefacts like 59.9900016784668 become 59.990002.
    """
    v = d.strip(v)
    sign = f"CASE WHEN {v} LIKE '-%' THEN '-' ELSE '' END"
    int_part = f"regexp_extract({v}, '^[+-]?0*([0-9]*)', 1)"
    frac = f"regexp_extract({v}, '[.]([0-9]*)$', 1)"
    digits = MONEY_SCALE + 1
    text = (
        f"concat({sign}, CASE WHEN {int_part} = '' THEN '0' ELSE {int_part} END, '.', "
        f"rpad(substr({frac}, 1, {digits}), {digits}, '0'))"
    )
    return (
        f"CAST(round(CAST({text} AS DECIMAL({MONEY_PRECISION + 2}, {digits})), {MONEY_SCALE}) "
        f"AS DECIMAL({MONEY_PRECISION}, {MONEY_SCALE}))"
    )


def portable_timestamp_utc(v: str, d: Dialect) -> str:
    """UTC TIMESTAMP from text the timestamp pattern accepted, built from its parts.

    Fractions beyond microseconds are truncated, never rounded: rounding 23:59:59.9999999 up
    would move the order to the next day.
    """

    def g(i: int) -> str:
        return f"regexp_extract({v}, {sql_string(TIMESTAMP_PATTERN)}, {i})"

    seconds = f"CASE WHEN {g(4)} = '' THEN '00' ELSE {g(4)} END"
    fraction = f"rpad(substr({g(5)}, 1, 6), 6, '0')"
    local = f"concat({g(1)}, ' ', {g(2)}, ':', {g(3)}, ':', {seconds}, '.', {fraction})"
    offset = (
        f"CASE WHEN {g(6)} = '' THEN 0 ELSE (CASE WHEN {g(6)} = '-' THEN -1 ELSE 1 END) * "
        f"(CAST({g(7)} AS INT) * 60 + CAST({g(8)} AS INT)) END"
    )
    return d.add_minutes(d.try_cast(local, "TIMESTAMP"), f"-({offset})")


def checked_sql(
    ds: Dataset, raw: str, d: Dialect, carried: Sequence[str] = ("_file_idx", "_row")
) -> str:
    """Rows of ``raw`` with ``_p_<col>`` problem codes, ``_bad`` and typed contract columns,
    after the ``carried`` columns of ``raw`` (the file and row, unless the engine adds them
    later).

    Each value is parsed once (inner query); problems derive from the parsed value. Typed
    columns of a bad row are meaningless and only ever read for good rows.
    """
    parsed = ", ".join(f"{parsed_expr(c, d)} AS _t_{c.name}" for c in ds.columns)
    raw_cols = ", ".join(d.quote(c.name) for c in ds.columns)
    problems = ", ".join(f"{problem_expr(c, f'_t_{c.name}', d)} AS _p_{c.name}" for c in ds.columns)
    typed = ", ".join(f"_t_{c.name} AS {c.name}" for c in ds.columns)
    any_bad = " OR ".join(f"_p_{c.name} IS NOT NULL" for c in ds.columns)
    p_cols = ", ".join(f"_p_{c.name}" for c in ds.columns)
    carry = "".join(f"{c}, " for c in carried)
    return (
        f"SELECT {carry}{p_cols}, ({any_bad}) AS _bad, {typed} FROM "
        f"(SELECT {carry}{', '.join(f'_t_{c.name}' for c in ds.columns)}, {problems} "
        f"FROM (SELECT {carry}{raw_cols}, {parsed} FROM {raw}) AS t) AS p"
    )


def rejects_sql(ds: Dataset, checked: str) -> str:
    """One row (file_idx, row, column, reason) per bad value in ``checked``."""
    parts = [
        f"SELECT _file_idx, _row, '{c.name}' AS column_name, _p_{c.name} AS reason "
        f"FROM {checked} WHERE _p_{c.name} IS NOT NULL"
        for c in ds.columns
    ]
    return " UNION ALL ".join(parts)


def file_stats_sql(ds: Dataset, checked: str) -> str:
    """Per file: rows read, rows with a bad value, good rows whose status is not a known one
    (a warning, not an error; 0 for a dataset without a status), and the smallest and largest
    key among good rows.

    One pass gives every figure the verdicts and the duplicate precheck need.
    """
    if any(c.name == "status" for c in ds.columns):
        known = ", ".join(f"'{s}'" for s in KNOWN_STATUSES)
        unknown = f"sum(CASE WHEN NOT _bad AND status NOT IN ({known}) THEN 1 ELSE 0 END)"
    else:
        unknown = "0"
    good_key = f"CASE WHEN NOT _bad THEN {ds.key} END"
    return (
        f"SELECT _file_idx, count(*) AS n_rows, "
        f"sum(CASE WHEN _bad THEN 1 ELSE 0 END) AS n_bad, {unknown} AS n_unknown_status, "
        f"min({good_key}) AS key_min, max({good_key}) AS key_max "
        f"FROM {checked} GROUP BY _file_idx"
    )


class FileStats(NamedTuple):
    """One row of :func:`file_stats_sql`."""

    rows: int
    bad: int
    unknown_status: int
    key_min: Any
    key_max: Any


NO_STATS = FileStats(0, 0, 0, None, None)  # a file of which no row was read


def file_stats(rows: Iterable[Sequence[Any]]) -> dict[int, FileStats]:
    """The rows of :func:`file_stats_sql` by file index."""
    return {
        int(i): FileStats(int(n), int(bad), int(unknown), lo, hi)
        for i, n, bad, unknown, lo, hi in rows
    }


def may_repeat_keys(
    ds: Dataset,
    good: str,
    files: Sequence[FileStats],
    d: Dialect,
    scalar: Callable[[str], int],
) -> bool:
    """False when no key occurs twice among the good rows of ``files`` (in ``good``), so
    :func:`duplicates_sql` can be skipped; ``scalar`` runs a one-value query.

    Integer keys whose span (the files' smallest to largest good key) fits the dialect's
    bitmaps are counted exactly, one bit per key; other keys leave the answer to
    :func:`duplicates_sql`, whose hash aggregate over every key costs several times more.
    """
    n = sum(f.rows - f.bad for f in files)
    if n <= 1:
        return False
    if any(c.type is not ColumnType.INT for c in ds.columns if c.name == ds.key):
        return True  # before int(): the smallest and largest of a text key are text
    # A good row has its key, so with n > 1 some file has a smallest and largest key.
    low = min(int(f.key_min) for f in files if f.key_min is not None)
    high = max(int(f.key_max) for f in files if f.key_max is not None)
    if high - low > d.max_bit_span:
        return True
    return scalar(d.count_distinct_in_span(d.quote(ds.key), good, low, high)) != n


def duplicates_sql(ds: Dataset, good: str) -> str:
    """Rows of ``good`` whose key occurs more than once, ranked in (file, row) order.

    ``_rn`` is the row's rank within its key (1 stays) and ``_same`` says whether it equals
    the first row on every contract column (an exact repeat, dropped) or not (a conflicting
    row, rejected). Only repeated keys are ranked, so a clean batch pays one hash aggregate.
    """
    key = ds.key
    order = f"PARTITION BY {key} ORDER BY _file_idx, _row"
    firsts = ", ".join(f"first_value({c}) OVER ({order}) AS _f_{c}" for c in ds.column_names)
    same = " AND ".join(f"{c} = _f_{c}" for c in ds.column_names)
    return (
        f"SELECT _file_idx, _row, _rn, ({same}) AS _same FROM (SELECT *, row_number() OVER "
        f"({order}) AS _rn, {firsts} FROM {good} WHERE {key} IN (SELECT {key} FROM {good} "
        f"GROUP BY {key} HAVING count(*) > 1)) AS r"
    )


def accepted_sql(ds: Dataset, good: str, duplicates: str | None) -> str:
    """The rows that go on: good rows minus every non-first row of a repeated key."""
    cols = ", ".join(ds.column_names)
    if duplicates is None:
        return f"SELECT {cols} FROM {good}"
    return (
        f"SELECT {cols} FROM {good} g WHERE NOT EXISTS (SELECT 1 FROM {duplicates} d "
        "WHERE d._rn > 1 AND d._file_idx = g._file_idx AND d._row = g._row)"
    )


def conflicts_sql(ds: Dataset, duplicates: str) -> str:
    """Rejects (file_idx, row, column, reason) for rows reusing a key with other content."""
    return (
        f"SELECT _file_idx, _row, '{ds.key}' AS column_name, "
        f"'{Reason.CONFLICTING_DUPLICATE}' AS reason FROM {duplicates} WHERE _rn > 1 AND NOT _same"
    )


def removed_sql(duplicates: str) -> str:
    """Per file: exact repeats dropped, and rows rejected for reusing a key with other
    content (:func:`conflicts_sql`); together, the rows :func:`accepted_sql` leaves out."""
    return (
        "SELECT _file_idx, sum(CASE WHEN _same THEN 1 ELSE 0 END), "
        f"sum(CASE WHEN _same THEN 0 ELSE 1 END) FROM {duplicates} WHERE _rn > 1 "
        "GROUP BY _file_idx"
    )


@dataclass
class FileReport:
    """The verdict on one landed file."""

    key: str
    dataset: str
    accepted: bool
    reason: str | None = None
    detail: str | None = None
    rows: int = 0
    bad_rows: int = 0
    rejected_rows: int = 0
    duplicates_dropped: int = 0
    unknown_status: int = 0


def unread_verdict(key: str, dataset: str) -> FileReport:
    """The verdict on an owned landing entry the engine must not read: an unsafe key
    (trigger.key_problem names why), else an entry that is not a regular file."""
    problem = trigger.key_problem(key)
    if problem is not None:
        return FileReport(
            key, dataset, False, FileReason.UNSAFE_KEY, f"unsafe key: {problem}: quarantined unread"
        )
    return FileReport(
        key, dataset, False, FileReason.NOT_A_FILE, "not a regular file: quarantined as it is"
    )


@dataclass
class ValidationReport:
    """Everything validation decided about one execution's files."""

    execution_id: str
    files: list[FileReport] = field(default_factory=list)
    accepted_rows: dict[str, int] = field(default_factory=dict)
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    rejects_file: str | None = None
    max_error_rate: str = "0.05"

    @property
    def rejected_rows(self) -> int:
        """Rows rejected in accepted files (bad values, bad shape, conflicting keys)."""
        return sum(f.rejected_rows for f in self.files)

    @property
    def usable(self) -> bool:
        """True when at least one file was accepted, so there is something to merge."""
        return any(f.accepted for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as written to validation_report.json."""
        data = asdict(self)
        data["rejected_rows"] = self.rejected_rows
        data["files_accepted"] = sum(f.accepted for f in self.files)
        data["files_rejected"] = sum(not f.accepted for f in self.files)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        """Inverse of :meth:`to_dict`."""
        return cls(
            execution_id=data["execution_id"],
            files=[FileReport(**f) for f in data["files"]],
            accepted_rows=dict(data["accepted_rows"]),
            duplicates_dropped=dict(data["duplicates_dropped"]),
            rejects_file=data.get("rejects_file"),
            max_error_rate=data.get("max_error_rate", "0.05"),
        )


def too_many_errors(rows: int, bad_rows: int, max_error_rate: Decimal) -> bool:
    """The whole-file rule: more than ``max_error_rate`` of the rows bad for their values."""
    return rows > 0 and Decimal(bad_rows) > max_error_rate * rows
