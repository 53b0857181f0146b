"""The contract SQL (validation.py) value by value, in DuckDB, against the reference's parsers.

For each text the expected outcome -- a reason code, or the typed value -- is what
tests/reference.py (plain Python, written from DESIGN.md) says about it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import pytest

from ecompipe import validation
from ecompipe.contracts import ORDER_ITEMS, ORDERS, PRODUCTS, Dataset
from ecompipe.engines.duckdb import DIALECT
from tests import reference

pytestmark = [pytest.mark.fast, pytest.mark.duckdb]

WS = "\t\u00a0\u3000\x0b\x0c\u2003"
INTS = [
    "7",
    "+7",
    "-7",
    " 7 ",
    "\t7\u00a0",
    "007",
    "0x1F",
    "1_0",
    "1.0",
    "1e3",
    "",
    "   ",
    "\u0663",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "+",
    "- 1",
    "7" * 30,
    "\x0b7\x0c",
]
MONEYS = [
    "19.99",
    "59.9900016784668",
    "5.",
    ".5",
    "-0.00",
    "-0.0000004",
    "-0.0000005",
    "-1",
    "NaN",
    "inf",
    "1e3",
    "1,000.00",
    "$5",
    "\u0661\u0662",
    ".",
    "+",
    "-.",
    "999999999999.999999",
    "999999999999.9999995",
    "1000000000000",
    "0000000000000.5",
    " 12.5\t",
    "\u00a012.5",
    "0.0000005",
    "0.00000049",
    "+3.1",
    "",
    " ",
]
TIMESTAMPS = [
    "2024-05-01 10:00:00",
    "2024-05-01T10:15:30Z",
    "2024-05-01 11:00:00+02:00",
    "2024-05-02T08:00:00.5",
    "2024-05-02 12:00 UTC",
    "2024-05-03T00:30:00-0100",
    "2024-05-01",
    "2024-13-01 10:00:00",
    "2024-02-30 10:00:00",
    "2024-05-01 24:00:00",
    "2024-05-01 23:59:60",
    "2024-05-01t10:00:00",
    "2024-05-01 10:00:00z",
    "2024-05-01 10:00:00 +02:00",
    "2024-05-01 10:00:00  UTC",
    "2024-05-01 10:00:00utc",
    "2024-05-01 10:00.5",
    "2024-05-01 10:00:00+24:00",
    "2024-05-01 10:00:00+02:60",
    "0000-01-01 00:00:00",
    "0001-01-01 00:30:00+01:00",
    "9999-12-31 23:30:00-01:00",
    "2024-12-31 23:59:59.9999999",
    "\t2024-05-01 10:00:00\u3000",
    "",
    "  ",
    "2024-05-01 9:00:00",
    "2024-05-01 10:00:00+0530",
]
TEXTS = ["Jeans", "  Jeans ", "\tJeans\u00a0", "", "   ", "\u3000", "Socks, Hosiery"]
STATUSES = ["Complete", " RETURNED ", "returned", "On Hold", "\t", ""]


def _check(ds: Dataset, column: str, texts: list[str]) -> list[tuple[str | None, Any]]:
    """(problem code, typed value) for each text put in ``column`` of an otherwise good row."""
    good = {
        "order_id": "1",
        "user_id": "1",
        "created_at": "2024-01-01 00:00:00",
        "status": "complete",
        "id": "1",
        "product_id": "1",
        "sale_price": "1",
        "sku": "S",
        "cost": "1",
        "category": "C",
        "retail_price": "1",
    }
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cols = ", ".join(f"{DIALECT.quote(c)} VARCHAR" for c in ds.column_names)
    con.execute(f"CREATE TABLE raw (_file_idx INT, _row BIGINT, {cols})")
    for i, text in enumerate(texts):
        row = [text if c == column else good[c] for c in ds.column_names]
        con.execute(f"INSERT INTO raw VALUES (0, {i}, {', '.join('?' for _ in row)})", row)
    sql = validation.checked_sql(ds, "raw", DIALECT)
    rows = con.execute(f"SELECT _p_{column}, {column} FROM ({sql}) ORDER BY _row").fetchall()
    con.close()
    return [(p, None if p else v) for p, v in rows]


def _expected(parse: Any, texts: list[str]) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for text in texts:
        try:
            out.append((None, parse(text.strip())))
        except reference.BadValue as bad:
            out.append((bad.reason, None))
    return out


def test_ints_match_the_reference() -> None:
    assert _check(ORDERS, "user_id", INTS) == _expected(reference.parse_int, INTS)


def test_money_matches_the_reference() -> None:
    got = _check(ORDER_ITEMS, "sale_price", MONEYS)
    expected = _expected(reference.parse_money, MONEYS)
    assert [p for p, _ in got] == [p for p, _ in expected]
    for (_, value), (_, ref) in zip(got, expected, strict=True):
        if ref is not None:
            assert Decimal(value) == ref and Decimal(value).as_tuple().exponent == -6


def test_money_hand_examples() -> None:
    got = dict(
        zip(
            ["59.9900016784668", "-0.0000005", "999999999999.9999995"],
            _check(PRODUCTS, "cost", ["59.9900016784668", "-0.0000005", "999999999999.9999995"]),
            strict=True,
        )
    )
    assert got["59.9900016784668"] == (None, Decimal("59.990002"))
    assert got["-0.0000005"] == ("negative", None)  # half-up: -0.000001
    assert got["999999999999.9999995"] == ("bad_decimal", None)  # rounds to 10**12


def test_timestamps_match_the_reference() -> None:
    got = _check(ORDERS, "created_at", TIMESTAMPS)
    expected = [
        (p, None if v is None else v.astimezone(UTC).replace(tzinfo=None))
        for p, v in _expected(reference.parse_timestamp, TIMESTAMPS)
    ]
    assert got == expected
    # By hand: +02:00 is two hours ahead of UTC, -0100 one behind; 7 fraction digits truncate.
    by_text = dict(zip(TIMESTAMPS, got, strict=True))
    assert by_text["2024-05-01 11:00:00+02:00"] == (None, datetime(2024, 5, 1, 9, 0))
    assert by_text["2024-05-03T00:30:00-0100"] == (None, datetime(2024, 5, 3, 1, 30))
    assert by_text["2024-12-31 23:59:59.9999999"] == (
        None,
        datetime(2024, 12, 31, 23, 59, 59, 999999),
    )


def test_text_and_status_match_the_reference() -> None:
    assert _check(PRODUCTS, "category", TEXTS) == _expected(reference.parse_text, TEXTS)
    assert _check(ORDERS, "status", STATUSES) == _expected(reference.parse_status, STATUSES)


def test_whitespace_set_is_pythons() -> None:
    """validation.WHITESPACE (trimmed by SQL) is exactly what str.strip() removes."""
    python = {chr(c) for c in range(0x110000) if chr(c).isspace()}
    assert set(validation.WHITESPACE) == python
    assert all(c in validation.WHITESPACE for c in WS)
