"""Contract checks as SQL, and the validation report.

The engine loads each file into a relation of text columns named after the contract columns,
plus ``_file_idx`` (position of the file in the dataset's key-ordered list) and ``_row`` (0-based
index of the row among the file's well-formed rows). The SQL built here turns that into typed
values and one problem code per bad value, then resolves duplicates. It is written once against
:class:`~ecompipe.dialect.Dialect`, so every engine enforces the same rules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from ecompipe.contracts import (
    KNOWN_STATUSES,
    MONEY_INT_DIGITS,
    MONEY_PRECISION,
    MONEY_SCALE,
    Column,
    ColumnType,
    Dataset,
    Reason,
)
from ecompipe.dialect import Dialect, sql_string

INT_PATTERN = r"^[+-]?[0-9]{1,19}$"
MONEY_PATTERN = r"^[+-]?([0-9]{1,INT}(\.[0-9]*)?|\.[0-9]+)$".replace("INT", str(MONEY_INT_DIGITS))
# date, T or space, HH:MM[:SS[.fraction]], then Z, +HH:MM, +HHMM or " UTC" (none means UTC).
TIMESTAMP_PATTERN = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2})(?::([0-9]{2})(?:[.]([0-9]+))?)?"
    r"(?:Z| UTC|([+-])([01][0-9]|2[0-3]):?([0-5][0-9]))?$"
)


def _trimmed(col: Column, d: Dialect) -> str:
    return f"trim({d.quote(col.name)})"


def problem_expr(col: Column, d: Dialect) -> str:
    """SQL giving the reason code of a bad value in ``col``, or NULL when it is good."""
    v = _trimmed(col, d)
    missing = f"WHEN {d.quote(col.name)} IS NULL OR {v} = '' THEN '{Reason.MISSING_VALUE}'"
    if col.type is ColumnType.TEXT:
        return f"CASE {missing} END"
    if col.type is ColumnType.INT:
        return (
            f"CASE {missing} WHEN NOT {d.regex_full_match(v, INT_PATTERN)} "
            f"THEN '{Reason.BAD_INT}' WHEN {d.try_cast(v, 'BIGINT')} IS NULL "
            f"THEN '{Reason.BAD_INT}' END"
        )
    if col.type is ColumnType.MONEY:
        return (
            f"CASE {missing} WHEN NOT {d.regex_full_match(v, MONEY_PATTERN)} "
            f"THEN '{Reason.BAD_DECIMAL}' WHEN {_money_value(col, d)} < 0 "
            f"THEN '{Reason.NEGATIVE}' END"
        )
    return (
        f"CASE {missing} WHEN NOT {d.regex_full_match(v, TIMESTAMP_PATTERN)} "
        f"THEN '{Reason.BAD_TIMESTAMP}' WHEN {_timestamp_value(col, d)} IS NULL "
        f"THEN '{Reason.BAD_TIMESTAMP}' END"
    )


def _money_value(col: Column, d: Dialect) -> str:
    # Exact decimal, rounded half-up to MONEY_SCALE: keep one more digit than the scale and
    # round once, so float artefacts like 59.9900016784668 become 59.990002.
    v = _trimmed(col, d)
    sign = f"CASE WHEN {v} LIKE '-%' THEN '-' ELSE '' END"
    int_part = f"regexp_extract({v}, '^[+-]?([0-9]*)', 1)"
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


def _timestamp_value(col: Column, d: Dialect) -> str:
    v = _trimmed(col, d)

    def g(i: int) -> str:
        return f"regexp_extract({v}, {sql_string(TIMESTAMP_PATTERN)}, {i})"

    seconds = f"CASE WHEN {g(3)} = '' THEN '00' ELSE {g(3)} END"
    # Fractions beyond microseconds are truncated, never rounded: rounding 23:59:59.9999999 up
    # would move the order to the next day.
    fraction = f"rpad(substr({g(4)}, 1, 6), 6, '0')"
    local = f"concat({g(1)}, ' ', {g(2)}, ':', {seconds}, '.', {fraction})"
    offset = (
        f"CASE WHEN {g(5)} = '' THEN 0 ELSE (CASE WHEN {g(5)} = '-' THEN -1 ELSE 1 END) * "
        f"(CAST({g(6)} AS INT) * 60 + CAST({g(7)} AS INT)) END"
    )
    return d.add_minutes(d.try_cast(local, "TIMESTAMP"), f"-({offset})")


def typed_expr(col: Column, d: Dialect) -> str:
    """SQL giving the typed value of a good ``col`` (callers only use it where it is good)."""
    v = _trimmed(col, d)
    if col.type is ColumnType.INT:
        return f"CAST({v} AS BIGINT)"
    if col.type is ColumnType.MONEY:
        return _money_value(col, d)
    if col.type is ColumnType.TIMESTAMP:
        return _timestamp_value(col, d)
    if col.name == "status":
        return f"lower({v})"
    return v


def checked_sql(ds: Dataset, raw: str, d: Dialect) -> str:
    """Rows of ``raw`` with ``_p_<col>`` problem codes, ``_bad`` and typed contract columns."""
    problems = ", ".join(f"{problem_expr(c, d)} AS _p_{c.name}" for c in ds.columns)
    any_bad = " OR ".join(f"_p_{c.name} IS NOT NULL" for c in ds.columns)
    typed = ", ".join(
        f"CASE WHEN NOT ({any_bad}) THEN {typed_expr(c, d)} END AS {c.name}" for c in ds.columns
    )
    return (
        f"SELECT _file_idx, _row, _p_*, ({any_bad}) AS _bad, {typed} FROM "
        f"(SELECT *, {problems} FROM {raw}) AS p"
    ).replace("_p_*", ", ".join(f"_p_{c.name}" for c in ds.columns))


def rejects_sql(ds: Dataset, checked: str) -> str:
    """One row (file_idx, row, column, reason) per bad value in ``checked``."""
    parts = [
        f"SELECT _file_idx, _row, '{c.name}' AS column_name, _p_{c.name} AS reason "
        f"FROM {checked} WHERE _p_{c.name} IS NOT NULL"
        for c in ds.columns
    ]
    return " UNION ALL ".join(parts)


def file_stats_sql(checked: str) -> str:
    """Per file: rows read and rows with a bad value."""
    return (
        f"SELECT _file_idx, count(*) AS n_rows, "
        f"sum(CASE WHEN _bad THEN 1 ELSE 0 END) AS n_bad FROM {checked} GROUP BY _file_idx"
    )


def dedup_sqls(ds: Dataset, good: str) -> tuple[str, str, str]:
    """(accepted rows, conflicting rows, count of exact repeats) over ``good`` rows.

    Rows are ordered by (file, row); the first row of a key stays. Only keys that occur more
    than once are ranked, so a clean batch pays one hash aggregate, not a sort.
    """
    key = ds.key
    cols = ", ".join(ds.column_names)
    dup_keys = f"(SELECT {key} FROM {good} GROUP BY {key} HAVING count(*) > 1)"
    firsts = ", ".join(
        f"first_value({c}) OVER (PARTITION BY {key} ORDER BY _file_idx, _row) AS _f_{c}"
        for c in ds.column_names
    )
    same = " AND ".join(f"{c} = _f_{c}" for c in ds.column_names)
    ranked = (
        f"(SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _file_idx, _row) AS _rn, "
        f"{firsts} FROM {good} WHERE {key} IN {dup_keys}) AS r"
    )
    accepted = (
        f"SELECT {cols} FROM {good} WHERE {key} NOT IN {dup_keys} "
        f"UNION ALL SELECT {cols} FROM {ranked} WHERE _rn = 1"
    )
    conflicts = (
        f"SELECT _file_idx, _row, '{key}' AS column_name, "
        f"'{Reason.CONFLICTING_DUPLICATE}' AS reason FROM {ranked} WHERE _rn > 1 AND NOT ({same})"
    )
    repeats = f"SELECT count(*) FROM {ranked} WHERE _rn > 1 AND {same}"
    return accepted, conflicts, repeats


def unknown_status_sql(checked: str) -> str:
    """Per file, good orders whose status is not a known one (a warning, not an error)."""
    known = ", ".join(f"'{s}'" for s in KNOWN_STATUSES)
    return (
        f"SELECT _file_idx, count(*) FROM {checked} WHERE NOT _bad AND status NOT IN ({known}) "
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
