"""Tests of the reference implementation (tests/reference.py) against hand-computed fixtures."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

try:
    from tests import reference as ref
except ImportError:  # pytest run without the repository root on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import reference as ref  # type: ignore[no-redef]

pytestmark = pytest.mark.fast

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HAND = FIXTURES / "hand"
DIRTY = FIXTURES / "hand_dirty"

ORDERS_HEADER = "order_id,user_id,created_at,status\n"
ITEMS_HEADER = "id,order_id,product_id,sale_price\n"
PRODUCTS_HEADER = "id,sku,cost,category,retail_price\n"


def _batch(folder: Path) -> dict[str, list[Path]]:
    return {dataset: [folder / f"{dataset}.csv"] for dataset in ref.DATASETS}


def _rejects_json(rejects: list[ref.Reject]) -> list[dict]:
    return [
        {"file": Path(r.file).name, "line": r.line, "column": r.column, "reason": r.reason}
        for r in rejects
    ]


def _verdict_json(verdict: ref.FileVerdict, base: Path) -> dict:
    return {
        "file": Path(verdict.file).relative_to(base).as_posix(),
        "dataset": verdict.dataset,
        "accepted": verdict.accepted,
        "reason": verdict.reason,
        "rows": verdict.rows,
        "bad_rows": verdict.bad_rows,
    }


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- hand fixtures


def test_hand_fixture_kpis_match_hand_computation() -> None:
    batch = ref.validate_batch(_batch(HAND))
    assert all(v.accepted and v.bad_rows == 0 for v in batch.verdicts)
    assert batch.rejects == []
    assert batch.duplicates_dropped == {"orders": 0, "order_items": 0, "products": 0}
    expected = json.loads((HAND / "expected.json").read_text())
    assert ref.kpis_as_json(*ref.kpis(batch.orders, batch.items, batch.products)) == expected


def test_hand_fixture_typed_values() -> None:
    batch = ref.validate_batch(_batch(HAND))
    assert batch.orders[103] == (1, datetime(2024, 3, 1, 23, 30, tzinfo=UTC), "shipped")
    assert batch.orders[102][2] == "returned"
    assert batch.orders[105][1] == datetime(2024, 3, 2, 8, 15, 0, 123456, tzinfo=UTC)
    assert batch.items[2] == (101, 2, Decimal("10.000000"))
    assert batch.items[7][2] == Decimal("59.990002")
    assert batch.items[10][2] == Decimal("1.000001")
    assert batch.products[1] == ("SKU-A", Decimal("5.00"), "Jeans", Decimal("20.00"))


def test_hand_dirty_rejects_verdicts_and_duplicates() -> None:
    expected = json.loads((DIRTY / "expected_verdicts.json").read_text())
    batch = ref.validate_batch(_batch(DIRTY), Decimal(expected["max_error_rate"]))
    assert _rejects_json(batch.rejects) == json.loads((DIRTY / "expected_rejects.json").read_text())
    assert [_verdict_json(v, DIRTY) for v in batch.verdicts] == expected["batch"]["verdicts"]
    assert batch.duplicates_dropped == expected["batch"]["duplicates_dropped"]
    kept = {"orders": len(batch.orders), "order_items": len(batch.items)}
    kept["products"] = len(batch.products)
    assert kept == expected["batch"]["kept"]
    # every row reason code is exercised
    assert {r.reason for r in batch.rejects} == set(ref.ROW_REASONS)


def test_hand_dirty_kept_values() -> None:
    batch = ref.validate_batch(_batch(DIRTY))
    assert batch.orders[2001] == (1, datetime(2024, 5, 1, 9, tzinfo=UTC), "complete")
    assert batch.orders[2002][2] == "shipped"  # the first one stays
    assert batch.orders[2003][1] == datetime(2024, 5, 1, 9, tzinfo=UTC)  # +02:00
    assert batch.orders[2005][0] == 5  # the later good row, not the bad one
    assert batch.orders[2008][1] == datetime(2024, 5, 3, 1, 30, tzinfo=UTC)  # -0100
    assert batch.orders[2009] == (9, datetime(2024, 5, 3, 9, tzinfo=UTC), "on hold")
    assert batch.items[3] == (2003, 3, Decimal("5.000000"))
    assert batch.items[4][2] == Decimal("0.5")
    assert batch.items[5][2] == Decimal("0") and not batch.items[5][2].is_signed()
    assert 6 not in batch.items and 8 not in batch.items
    assert batch.products[2] == ("SKU-002", Decimal("2.5"), "Socks, Hosiery", Decimal("10"))
    assert 3 not in batch.products


@pytest.mark.parametrize(
    "entry",
    json.loads((DIRTY / "expected_verdicts.json").read_text())["file_reasons"],
    ids=lambda entry: entry["file"],
)
def test_hand_dirty_file_reasons(entry: dict) -> None:
    """Each file-reason file, batched with the main files of the other datasets."""
    files = _batch(DIRTY)
    files[entry["dataset"]] = [DIRTY / entry["file"]]
    batch = ref.validate_batch(files)
    verdicts = [_verdict_json(v, DIRTY) for v in batch.verdicts]
    assert entry in verdicts
    # the rejected file contributes no rows and no rejects; the others are unaffected
    replaced = f"{entry['dataset']}.csv"
    expected_rejects = json.loads((DIRTY / "expected_rejects.json").read_text())
    assert _rejects_json(batch.rejects) == [r for r in expected_rejects if r["file"] != replaced]
    table = {"orders": batch.orders, "order_items": batch.items, "products": batch.products}
    assert table[entry["dataset"]] == {}
    assert batch.duplicates_dropped[entry["dataset"]] == 0


# --------------------------------------------------------------------------- reading rules


def test_line_numbers_with_blank_lines_and_multiline_fields(tmp_path: Path) -> None:
    text = (
        "order_id,user_id,created_at,status,note\r\n"  # 1
        '1,1,2024-01-01 00:00,"x",\r\n'  # 2
        "\r\n"  # 3 (empty, not a row)
        '2,2,2024-01-01 00:00,"",\r\n'  # 4 missing status
        '3,x,2024-01-01 00:00,shipped,"a\r\nb, c\r\n"\r\n'  # 5-7 bad user_id
        "4,4,2024-01-01,shipped,\r\n"  # 8 bare date
    )
    path = _write(tmp_path, "orders.csv", text)
    batch = ref.validate_batch({"orders": [path]}, max_error_rate=Decimal(1))
    assert [(r.line, r.column, r.reason) for r in batch.rejects] == [
        (4, "status", "missing_value"),
        (5, "user_id", "bad_int"),
        (8, "created_at", "bad_timestamp"),
    ]
    assert batch.verdicts[0].rows == 4 and batch.verdicts[0].bad_rows == 3


def test_error_rate_is_strictly_more_than(tmp_path: Path) -> None:
    def good(count: int) -> str:
        return "".join(f"{n},{n},2024-01-01 00:00,complete\n" for n in range(1, count + 1))

    bad = "99,x,2024-01-01,complete\n"  # bad_int and bad_timestamp: one bad row
    exactly = _write(tmp_path, "a/orders.csv", ORDERS_HEADER + good(19) + bad)  # 1/20
    over = _write(tmp_path, "b/orders.csv", ORDERS_HEADER + good(18) + bad)  # 1/19
    assert ref.validate_batch({"orders": [exactly]}).verdicts[0].accepted
    verdict = ref.validate_batch({"orders": [over]}).verdicts[0]
    assert (verdict.accepted, verdict.reason, verdict.rows, verdict.bad_rows) == (
        False,
        "error_rate",
        19,
        1,
    )
    assert ref.validate_batch({"orders": [over]}, Decimal("0.1")).verdicts[0].accepted


def test_conflicting_duplicates_across_files_in_sorted_order(tmp_path: Path) -> None:
    later = _write(tmp_path, "b.csv", ORDERS_HEADER + "1,1,2024-01-01 00:00,returned\n")
    earlier = _write(tmp_path, "a.csv", ORDERS_HEADER + "1,1,2024-01-01 00:00,complete\n")
    batch = ref.validate_batch({"orders": [later, earlier]})
    assert batch.orders[1][2] == "complete"
    assert batch.rejects == [ref.Reject(str(later), 2, "order_id", "conflicting_duplicate")]
    assert [Path(v.file).name for v in batch.verdicts] == ["a.csv", "b.csv"]


def test_rejected_file_claims_no_keys(tmp_path: Path) -> None:
    bad = _write(tmp_path, "a.csv", ORDERS_HEADER + "1,1,2024-01-01 00:00,complete\n2,x,y,\n")
    good = _write(tmp_path, "b.csv", ORDERS_HEADER + "1,7,2024-01-02 00:00,shipped\n")
    batch = ref.validate_batch({"orders": [bad, good]})
    assert [v.reason for v in batch.verdicts] == ["error_rate", None]
    assert batch.rejects == []
    assert batch.orders == {1: (7, datetime(2024, 1, 2, tzinfo=UTC), "shipped")}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("59.9900016784668", "59.990002"),
        ("10.0000004", "10.000000"),
        ("1.0000005", "1.000001"),
        ("5.", "5"),
        (".5", "0.5"),
        ("+3", "3"),
        ("-0.00", "0"),
        ("999999999999.999999", "999999999999.999999"),
        ("NaN", "bad_decimal"),
        ("inf", "bad_decimal"),
        ("1e3", "bad_decimal"),
        ("1,000.00", "bad_decimal"),
        ("$5", "bad_decimal"),
        ("\u0665", "bad_decimal"),
        ("1234567890123", "bad_decimal"),
        ("999999999999.9999995", "bad_decimal"),
        (".", "bad_decimal"),
        ("-1", "negative"),
        ("-0.01", "negative"),
        ("", "missing_value"),
    ],
)
def test_parse_money(text: str, expected: str) -> None:
    if expected[0].isdigit():
        assert ref.parse_money(text) == Decimal(expected)
    else:
        with pytest.raises(ref.BadValue) as bad:
            ref.parse_money(text)
        assert bad.value.reason == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-02 01:30:00+02:00", datetime(2024, 3, 1, 23, 30, tzinfo=UTC)),
        ("2024-03-02T01:30+0200", datetime(2024, 3, 1, 23, 30, tzinfo=UTC)),
        ("2024-03-01T22:00:00-05:00", datetime(2024, 3, 2, 3, 0, tzinfo=UTC)),
        ("2024-03-02 08:15:00.1234567 UTC", datetime(2024, 3, 2, 8, 15, 0, 123456, tzinfo=UTC)),
        ("2024-03-02T08:15:00.5Z", datetime(2024, 3, 2, 8, 15, 0, 500000, tzinfo=UTC)),
        ("2024-03-02 08:15", datetime(2024, 3, 2, 8, 15, tzinfo=UTC)),
        ("2024-03-02", None),
        ("2024-13-01 10:00:00", None),
        ("2024-02-30 10:00:00", None),
        ("2024-01-01 25:00:00", None),
        ("2024-01-01 10:60", None),
        ("2024-01-01T10:00:00 +02:00", None),
        ("01/02/2024 10:00", None),
        ("2024-01-01T10:00:00+25:00", None),
    ],
)
def test_parse_timestamp(text: str, expected: datetime | None) -> None:
    if expected is not None:
        assert ref.parse_timestamp(text) == expected
    else:
        with pytest.raises(ref.BadValue, match="bad_timestamp"):
            ref.parse_timestamp(text)


@pytest.mark.parametrize(
    "text", ["1.0", "1e3", "\u0663", "0x1F", "1 000", "9223372036854775808", "+"]
)
def test_parse_int_bad(text: str) -> None:
    with pytest.raises(ref.BadValue, match="bad_int"):
        ref.parse_int(text)


def test_parse_int_good() -> None:
    assert [ref.parse_int(t) for t in ("007", "+5", "-3")] == [7, 5, -3]


# --------------------------------------------------------------------------- merge


def test_merge_later_replaces_earlier(tmp_path: Path) -> None:
    first = ref.validate_batch(
        {
            "orders": [
                _write(tmp_path, "1/o.csv", ORDERS_HEADER + "1,1,2024-01-01 10:00,complete\n")
            ],
            "order_items": [_write(tmp_path, "1/i.csv", ITEMS_HEADER + "1,1,1,10.00\n")],
            "products": [_write(tmp_path, "1/p.csv", PRODUCTS_HEADER + "1,S,1,Tops,2\n")],
        }
    )
    second = ref.validate_batch(
        {
            "orders": [
                _write(tmp_path, "2/o.csv", ORDERS_HEADER + "1,1,2024-01-01 10:00,Returned\n")
            ],
            "order_items": [_write(tmp_path, "2/i.csv", ITEMS_HEADER + "1,1,1,12.50\n2,1,1,1\n")],
        }
    )
    state = ref.merge(ref.merge(None, first), second)
    assert state.orders[1][2] == "returned"
    assert state.items == {1: (1, 1, Decimal("12.5")), 2: (1, 1, Decimal("1"))}
    assert state.products == first.products
    assert len(state.verdicts) == 5
    assert first.orders[1][2] == "complete"  # inputs untouched
    order_metrics, category_metrics = ref.kpis(state.orders, state.items, state.products)
    assert order_metrics[date(2024, 1, 1)] == {
        "total_orders": 1,
        "total_revenue": Decimal("13.50"),
        "total_items_sold": 2,
        "return_rate": Decimal("1.0000"),
        "unique_customers": 1,
    }
    assert category_metrics[("Tops", date(2024, 1, 1))]["avg_return_rate"] == Decimal("1")


def test_merge_items_before_their_orders_and_products(tmp_path: Path) -> None:
    items = ref.validate_batch(
        {"order_items": [_write(tmp_path, "i.csv", ITEMS_HEADER + "1,1,1,5\n")]}
    )
    state = ref.merge(None, items)
    assert ref.kpis(state.orders, state.items, state.products) == ({}, {})
    orders = ref.validate_batch(
        {"orders": [_write(tmp_path, "o.csv", ORDERS_HEADER + "1,9,2024-01-01 10:00,shipped\n")]}
    )
    state = ref.merge(state, orders)
    order_metrics, category_metrics = ref.kpis(state.orders, state.items, state.products)
    assert order_metrics[date(2024, 1, 1)]["total_revenue"] == Decimal("5.00")
    assert category_metrics == {}
    products = ref.validate_batch(
        {"products": [_write(tmp_path, "p.csv", PRODUCTS_HEADER + "1,S,1,Tops,2\n")]}
    )
    state = ref.merge(state, products)
    _, category_metrics = ref.kpis(state.orders, state.items, state.products)
    assert category_metrics[("Tops", date(2024, 1, 1))]["daily_revenue"] == Decimal("5.00")


def test_merge_of_split_batches_equals_one_batch() -> None:
    whole = ref.validate_batch(_batch(HAND))
    state = None
    for dataset in ("order_items", "products", "orders"):  # items first, orders last
        state = ref.merge(state, ref.validate_batch({dataset: [HAND / f"{dataset}.csv"]}))
    assert state is not None
    assert ref.kpis(state.orders, state.items, state.products) == ref.kpis(
        whole.orders, whole.items, whole.products
    )


# --------------------------------------------------------------------------- rounding


def test_rounding_is_half_up_at_output() -> None:
    assert ref.round_half_up(Decimal("0.125"), 2) == Decimal("0.13")
    assert ref.round_half_up(Decimal("65.105"), 2) == Decimal("65.11")
    assert ref.round_half_up(Decimal("65.104999"), 2) == Decimal("65.10")
    assert ref.divide_half_up(1, 32, 4) == Decimal("0.0313")  # 0.03125
    assert ref.divide_half_up(2, 3, 4) == Decimal("0.6667")
    assert ref.divide_half_up(1, 3, 4) == Decimal("0.3333")
    assert ref.divide_half_up(Decimal("10.25"), 2, 2) == Decimal("5.13")  # 5.125
    assert ref.divide_half_up(Decimal("10.249999"), 2, 2) == Decimal("5.12")  # 5.1249995
    assert str(ref.divide_half_up(0, 7, 4)) == "0.0000"


def test_return_rate_tie_rounds_up() -> None:
    """1 returned order out of 32 -> 0.03125 -> 0.0313 (half-even would give 0.0312)."""
    created = datetime(2024, 1, 1, 12, tzinfo=UTC)
    orders = {n: (n, created, "returned" if n == 0 else "complete") for n in range(32)}
    items = {n: (n, 1, Decimal("0.005")) for n in range(32)}
    products = {1: ("S", Decimal(0), "Tops", Decimal(0))}
    order_metrics, category_metrics = ref.kpis(orders, items, products)
    day = order_metrics[date(2024, 1, 1)]
    assert day["return_rate"] == Decimal("0.0313")
    assert day["total_revenue"] == Decimal("0.16")
    assert category_metrics[("Tops", date(2024, 1, 1))] == {
        "daily_revenue": Decimal("0.16"),
        "avg_order_value": Decimal("0.01"),  # 0.005 exactly -> 0.01
        "avg_return_rate": Decimal("0.0313"),
    }
