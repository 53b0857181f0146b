"""The few SQL spellings that differ between engines.

Validation and KPI SQL (validation.py, kpis.py) is written once against this small interface;
each engine supplies its dialect. Everything else in that SQL is the common subset DuckDB and
Spark SQL share.
"""

from __future__ import annotations

from typing import Protocol


class Dialect(Protocol):
    """SQL fragments an engine must spell its own way."""

    #: An integer type wide enough for sums of money in micro-units (HUGEINT / DECIMAL(38,0)).
    big_int: str
    #: The widest span of integers (largest minus smallest) ``count_distinct_in_span`` takes.
    max_bit_span: int

    def count_distinct_in_span(self, expr: str, source: str, low: int, high: int) -> str:
        """A query giving the number of distinct values of the integer ``expr`` in ``source``,
        all of them between ``low`` and ``high``: one bit per integer of the span, far
        cheaper than hashing every value."""
        ...

    def regex_full_match(self, expr: str, pattern: str) -> str:
        """True when the whole of ``expr`` matches ``pattern`` (NULL in, NULL out)."""
        ...

    def strip(self, expr: str) -> str:
        """``expr`` without leading and trailing ``validation.WHITESPACE`` characters."""
        ...

    def try_cast(self, expr: str, sql_type: str) -> str:
        """``expr`` cast to ``sql_type`` (BIGINT, TIMESTAMP), or NULL when it cannot be."""
        ...

    def parse_money(self, expr: str) -> str:
        """DECIMAL(18, 6) rounded half-up from text the money pattern accepted.

        ``validation.portable_money`` builds it from parts for engines whose cast does not
        round half-up exactly.
        """
        ...

    def parse_timestamp_utc(self, expr: str) -> str:
        """UTC TIMESTAMP (fraction truncated to microseconds) from text the timestamp
        pattern accepted, or NULL for an impossible date. ``validation.portable_timestamp_utc``
        builds it from parts."""
        ...

    def add_minutes(self, ts: str, minutes: str) -> str:
        """Timestamp ``ts`` shifted by integer ``minutes``."""
        ...

    def int_div(self, a: str, b: str) -> str:
        """Integer division of non-negative integers, rounding down."""
        ...

    def quote(self, identifier: str) -> str:
        """Quote an identifier (a CSV header name may hold any character)."""
        ...

    def string_literal(self, value: str) -> str:
        """A string literal."""
        ...


def sql_string(value: str) -> str:
    """A standard SQL string literal ('' doubles a quote); DuckDB and Spark both accept it."""
    return "'" + value.replace("'", "''") + "'"
