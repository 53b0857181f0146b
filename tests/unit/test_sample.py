"""Tests of the sample data generator (ecompipe.sample).

The checker below is written from DESIGN.md ("Data contracts") with csv + re + decimal only; it
deliberately uses no ecompipe code, so a bug shared by the generator and the validator cannot
hide here.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ecompipe.sample import SampleSummary, generate_sample

pytestmark = pytest.mark.fast

DATASETS = ("orders", "order_items", "products")
COLUMNS = {
    "orders": [
        "order_id",
        "user_id",
        "status",
        "gender",
        "created_at",
        "returned_at",
        "shipped_at",
        "delivered_at",
        "num_of_item",
    ],
    "order_items": [
        "id",
        "order_id",
        "user_id",
        "product_id",
        "inventory_item_id",
        "status",
        "created_at",
        "shipped_at",
        "delivered_at",
        "returned_at",
        "sale_price",
    ],
    "products": [
        "id",
        "cost",
        "category",
        "name",
        "brand",
        "retail_price",
        "department",
        "sku",
        "distribution_center_id",
    ],
}
KEYS = {"orders": "order_id", "order_items": "id", "products": "id"}
# Contract: required columns and their types.
CONTRACT = {
    "orders": {"order_id": "int", "user_id": "int", "created_at": "timestamp", "status": "text"},
    "order_items": {"id": "int", "order_id": "int", "product_id": "int", "sale_price": "money"},
    "products": {
        "id": "int",
        "sku": "text",
        "cost": "money",
        "category": "text",
        "retail_price": "money",
    },
}
CATEGORIES = {
    "Accessories",
    "Active",
    "Blazers & Jackets",
    "Clothing Sets",
    "Dresses",
    "Fashion Hoodies & Sweatshirts",
    "Intimates",
    "Jeans",
    "Jumpsuits & Rompers",
    "Leggings",
    "Maternity",
    "Outerwear & Coats",
    "Pants",
    "Pants & Capris",
    "Plus",
    "Shorts",
    "Skirts",
    "Sleep & Lounge",
    "Socks",
    "Socks & Hosiery",
    "Suits",
    "Suits & Sport Coats",
    "Sweaters",
    "Swim",
    "Tops & Tees",
    "Underwear",
}
STATUSES = {"Processing", "Shipped", "Complete", "Cancelled", "Returned"}
FAULT_KINDS = {
    "bad_type",
    "missing_value",
    "negative_price",
    "duplicate_row",
    "conflicting_key",
    "orphan_item",
    "missing_column",
}

# ---------------------------------------------------------------------------------------------
# Independent contract checker
# ---------------------------------------------------------------------------------------------

INT_RE = re.compile(r"[+-]?[0-9]+")
MONEY_RE = re.compile(r"-?([0-9]+)(\.[0-9]+)?")
TS_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?"
    r"( UTC|Z|[+-][0-9]{2}:[0-9]{2})?"
)


def parse_ts(text: str) -> datetime | None:
    """The UTC instant of a contract timestamp, or None when it is a bad value."""
    if not TS_RE.fullmatch(text):
        return None
    iso = text.removesuffix(" UTC").removesuffix("Z")
    try:
        value = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_money(text: str) -> Decimal | None:
    """The exact decimal of a contract money value, or None when it is a bad value."""
    m = MONEY_RE.fullmatch(text)
    if not m or len(m.group(1).lstrip("0")) > 12:
        return None
    return Decimal(text)


def classify(dataset: str, row: dict[str, str]) -> str | None:
    """The row-level fault of a row: missing_value, bad_type, negative_price or None."""
    kinds = set()
    for col, typ in CONTRACT[dataset].items():
        value = row[col]
        if value == "":
            kinds.add("missing_value")
        elif (typ == "int" and not INT_RE.fullmatch(value)) or (
            typ == "timestamp" and parse_ts(value) is None
        ):
            kinds.add("bad_type")
        elif typ == "money":
            money = parse_money(value)
            if money is None:
                kinds.add("bad_type")
            elif money < 0:
                kinds.add("negative_price")
    assert len(kinds) <= 1, f"a generated row carries more than one fault: {row}"
    return kinds.pop() if kinds else None


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]], list[list[str]]]:
    """Header as written, rows keyed by normalised (trimmed, lower) header, raw rows."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        records = list(csv.reader(fh, strict=True))
    header, body = records[0], records[1:]
    names = [h.strip().lower() for h in header]
    assert all(len(r) == len(header) for r in body), f"ragged rows in {path}"
    return header, [dict(zip(names, r, strict=True)) for r in body], body


def minimal_csv(header: list[str], body: list[list[str]], newline: str) -> str:
    """What the file must look like byte for byte when quoted only where needed."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=newline, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(body)
    return buf.getvalue()


Data = dict[str, tuple[list[str], list[dict[str, str]], list[list[str]]]]

# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

N_CLEAN = 2000


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    return generate_sample(tmp_path_factory.mktemp("clean") / "landing", N_CLEAN, seed=7)


@pytest.fixture(scope="module")
def clean_data(clean: SampleSummary) -> Data:
    return {ds: read_csv(clean.files[ds]) for ds in DATASETS}


# ---------------------------------------------------------------------------------------------
# Files, names, determinism
# ---------------------------------------------------------------------------------------------


def test_file_names_and_summary(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    summary = generate_sample(landing, 300)
    assert summary.files == {ds: landing / ds / f"{ds}_s42_n300.csv" for ds in DATASETS}
    assert summary.faults == {}
    for ds in DATASETS:
        _, rows, _ = read_csv(summary.files[ds])
        assert summary.rows[ds] == len(rows)
    named = generate_sample(landing, 300, name="batch-2")
    assert named.files["orders"] == landing / "orders" / "orders_batch-2.csv"
    # Staging happens outside landing and is cleaned up.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]
    assert sorted(p.name for p in landing.iterdir()) == sorted(DATASETS)


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    for dirty in (False, True):
        a = generate_sample(tmp_path / f"a{dirty}", 600, seed=3, dirty=dirty)
        b = generate_sample(tmp_path / f"b{dirty}", 600, seed=3, dirty=dirty)
        assert a.rows == b.rows and a.faults == b.faults
        files_a = sorted((tmp_path / f"a{dirty}").rglob("*.csv"))
        files_b = sorted((tmp_path / f"b{dirty}").rglob("*.csv"))
        assert [p.name for p in files_a] == [p.name for p in files_b]
        assert len(files_a) == (4 if dirty else 3)
        for fa, fb in zip(files_a, files_b, strict=True):
            assert fa.read_bytes() == fb.read_bytes(), fa.name


def test_other_seed_gives_other_data(tmp_path: Path) -> None:
    a = generate_sample(tmp_path / "a", 500, seed=1, name="x")
    b = generate_sample(tmp_path / "b", 500, seed=2, name="x")
    for ds in DATASETS:
        assert a.files[ds].read_bytes() != b.files[ds].read_bytes(), ds


def test_existing_file_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate_sample(landing, 100, name="b1")
    with pytest.raises(FileExistsError, match=re.escape("orders_b1.csv")):
        generate_sample(landing, 100, name="b1")
    # One clashing file blocks the whole set: the other datasets get nothing either.
    (landing / "order_items").mkdir(exist_ok=True)
    (landing / "order_items" / "order_items_b2.csv").write_text("id\n1\n")
    with pytest.raises(FileExistsError, match=re.escape("order_items_b2.csv")):
        generate_sample(landing, 100, name="b2")
    assert not (landing / "orders" / "orders_b2.csv").exists()
    assert not (landing / "products" / "products_b2.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "a b"])
def test_unsafe_name_is_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path, 100, name=bad)


def test_non_positive_orders_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        generate_sample(tmp_path, 0)


# ---------------------------------------------------------------------------------------------
# Clean data: columns, shape, contract
# ---------------------------------------------------------------------------------------------


def test_clean_columns_and_plain_csv(clean: SampleSummary, clean_data: Data) -> None:
    for ds in DATASETS:
        header, _, body = clean_data[ds]
        assert header == COLUMNS[ds]
        raw = clean.files[ds].read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        assert b"\r" not in raw
        # UTF-8, LF, quoted only where needed: exactly what a minimal CSV writer produces.
        assert raw.decode("utf-8") == minimal_csv(header, body, "\n")


def test_clean_shape(clean_data: Data) -> None:
    n = N_CLEAN
    _, orders, _ = clean_data["orders"]
    _, items, _ = clean_data["order_items"]
    _, products, _ = clean_data["products"]

    assert [int(o["order_id"]) for o in orders] == list(range(1, n + 1))
    assert n <= len(items) <= 4 * n
    assert [int(i["id"]) for i in items] == list(range(1, len(items) + 1))
    assert sum(int(o["num_of_item"]) for o in orders) == len(items)
    per_order = Counter(int(i["order_id"]) for i in items)
    for o in orders:
        assert 1 <= int(o["num_of_item"]) <= 4
        assert per_order[int(o["order_id"])] == int(o["num_of_item"])

    n_users = n // 2
    users = {int(o["user_id"]) for o in orders}
    assert users <= set(range(1, n_users + 1))
    assert len(users) > 0.6 * n_users

    n_products = max(50, min(n // 5, 30000))
    assert [int(p["id"]) for p in products] == list(range(1, n_products + 1))
    assert {p["category"] for p in products} == CATEGORIES
    assert {p["department"] for p in products} == {"Men", "Women"}
    assert all(re.fullmatch(r"[0-9A-Fa-f]{32}", p["sku"]) for p in products)
    assert len({p["sku"] for p in products}) == n_products

    # Every item's order and product exist; the item copies its order's status and user.
    order_by_id = {o["order_id"]: o for o in orders}
    product_by_id = {p["id"]: p for p in products}
    for i in items:
        order = order_by_id[i["order_id"]]
        product = product_by_id[i["product_id"]]
        assert i["status"] == order["status"]
        assert i["user_id"] == order["user_id"]
        assert i["sale_price"] == product["retail_price"]


def test_clean_statuses(clean_data: Data) -> None:
    _, orders, _ = clean_data["orders"]
    statuses = Counter(o["status"] for o in orders)
    assert {s.capitalize() for s in statuses} == STATUSES
    assert set(statuses) >= STATUSES
    lowercase = sum(c for s, c in statuses.items() if s.islower())
    assert 0 < lowercase < 0.03 * len(orders)
    returned = sum(c for s, c in statuses.items() if s.lower() == "returned")
    assert 0.06 < returned / len(orders) < 0.14
    for o in orders:
        status = o["status"].lower()
        assert (o["returned_at"] != "") == (status == "returned")
        assert (o["delivered_at"] != "") == (status in {"complete", "returned"})
        assert (o["shipped_at"] != "") == (status in {"shipped", "complete", "returned"})


def test_clean_timestamps(clean_data: Data) -> None:
    _, orders, _ = clean_data["orders"]
    styles: Counter[str] = Counter()
    date_moved_by_offset = 0
    years = set()
    for o in orders:
        text = o["created_at"]
        created = parse_ts(text)
        assert created is not None, text
        assert date(2019, 1, 1) <= created.date() <= date(2025, 12, 31)
        years.add(created.year)
        if text.endswith(" UTC"):
            styles["thelook"] += 1
            assert re.fullmatch(r".* [0-9:]{8}\.[0-9]{6} UTC", text)
        elif text.endswith("Z"):
            styles["z"] += 1
        else:
            styles["offset"] += 1
            if date.fromisoformat(text[:10]) != created.date():
                date_moved_by_offset += 1
        # Later events are later, and are only ever empty or real timestamps.
        previous = created
        for col in ("shipped_at", "delivered_at", "returned_at"):
            if o[col]:
                event = parse_ts(o[col])
                assert event is not None and event > previous
                previous = event
    assert years == set(range(2019, 2026))
    assert styles["thelook"] > 0.6 * len(orders)
    assert styles["z"] > 0 and styles["offset"] > 0
    assert date_moved_by_offset > 0


def test_clean_money(clean_data: Data) -> None:
    _, products, _ = clean_data["products"]
    long_fraction = two_decimals = 0
    for p in products:
        cost, retail = parse_money(p["cost"]), parse_money(p["retail_price"])
        assert cost is not None and retail is not None
        assert 0 < cost < retail
        for text in (p["cost"], p["retail_price"]):
            decimals = len(text.partition(".")[2])
            long_fraction += decimals > 6
            two_decimals += decimals == 2
    assert long_fraction > 0 and two_decimals > 0
    # A name with a comma survives the round trip (it is quoted in the file).
    assert any("," in p["name"] for p in products)


def test_clean_values_satisfy_contract(clean_data: Data) -> None:
    for ds in DATASETS:
        _, rows, _ = clean_data[ds]
        keys = Counter(r[KEYS[ds]] for r in rows)
        assert max(keys.values()) == 1, f"duplicate keys in clean {ds}"
        for row in rows:
            assert classify(ds, row) is None, (ds, row)
            if ds == "orders":
                assert row["status"].lower() in {s.lower() for s in STATUSES}


# ---------------------------------------------------------------------------------------------
# Dirty data: every fault kind, as counted
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [100, 3000])
def test_dirty_faults_are_present_and_counted(tmp_path: Path, n: int) -> None:
    landing = tmp_path / "landing"
    summary = generate_sample(landing, n, seed=11, dirty=True)
    assert set(summary.faults) == FAULT_KINDS
    assert all(count > 0 for count in summary.faults.values()), summary.faults
    assert summary.faults["missing_column"] == 1

    data = {ds: read_csv(summary.files[ds]) for ds in DATASETS}
    found: Counter[str] = Counter()
    for ds in DATASETS:
        header, rows, body = data[ds]
        assert [h.strip().lower() for h in header] == COLUMNS[ds]
        assert summary.rows[ds] == len(rows)

        kinds = [classify(ds, row) for row in rows]
        found.update(k for k in kinds if k)
        bad = sum(1 for k in kinds if k)
        # The file must stay acceptable (with rejected rows) under a 5 % error rate.
        assert bad < 0.05 * len(rows), (ds, bad, len(rows))

        lines = Counter(tuple(r) for r in body)
        found["duplicate_row"] += sum(c - 1 for c in lines.values())
        first_by_key: dict[str, tuple[str, ...]] = {}
        for row, kind, raw in zip(rows, kinds, body, strict=True):
            if kind is not None:
                continue
            key = row[KEYS[ds]]
            if key in first_by_key and first_by_key[key] != tuple(raw):
                found["conflicting_key"] += 1
            first_by_key.setdefault(key, tuple(raw))

    # Orphans: well-formed items whose order id is beyond every order in the file.
    _, items, _ = data["order_items"]
    found["orphan_item"] = sum(
        1
        for i, kind in zip(items, [classify("order_items", r) for r in items], strict=True)
        if kind is None and int(i["order_id"]) > n
    )

    nocol = landing / "order_items" / f"order_items_s11_n{n}_nocol.csv"
    header, rows, _ = read_csv(nocol)
    assert "sale_price" not in header
    assert header == [c for c in COLUMNS["order_items"] if c != "sale_price"]
    assert 0 < len(rows) <= 20
    found["missing_column"] = 1

    assert dict(found) == summary.faults

    total_rows = sum(summary.rows.values())
    rejected = sum(summary.faults[k] for k in ("bad_type", "missing_value", "negative_price"))
    assert rejected < 0.03 * total_rows


def test_dirty_bad_values_are_varied(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, 5000, seed=5, dirty=True)
    values: set[str] = set()
    for ds in DATASETS:
        _, rows, _ = read_csv(summary.files[ds])
        for row in rows:
            if classify(ds, row) == "bad_type":
                values.update(row[c] for c in CONTRACT[ds] if row[c])
    joined = "\n".join(values)
    for needle in ("NaN", "1e3", "$", "yesterday", "2023-13-45 99:00:00"):
        assert needle in joined, needle
    assert re.search(r"^[0-9]+,[0-9]{2}$", joined, re.M), "decimal comma"
    assert re.search(r"^[0-9]+a$", joined, re.M), "int with a letter"
    assert re.search(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", joined, re.M), "bare date"


def test_dirty_orders_file_has_bom_crlf_and_messy_header(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, 500, dirty=True)
    raw = summary.files["orders"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.count(b"\r\n") == raw.count(b"\n") == summary.rows["orders"] + 1
    header, _, _ = read_csv(summary.files["orders"])
    assert header != COLUMNS["orders"]
    assert "Order_ID" in header
    assert any(h != h.strip() for h in header)
    assert [h.strip().lower() for h in header] == COLUMNS["orders"]
    # The other dirty files stay LF without BOM.
    for ds in ("order_items", "products"):
        other = summary.files[ds].read_bytes()
        assert b"\r" not in other and not other.startswith(b"\xef\xbb\xbf")


def test_clean_mode_has_no_nocol_file_and_no_orphans(clean: SampleSummary) -> None:
    folder = clean.files["order_items"].parent
    assert [p.name for p in folder.iterdir()] == [clean.files["order_items"].name]


@pytest.mark.slow
def test_two_hundred_thousand_orders(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path, 200_000, dirty=True)
    assert summary.rows["orders"] >= 200_000
    assert 200_000 <= summary.rows["order_items"] <= 4 * 200_000 + 10_000
    assert summary.rows["products"] >= 30_000
    assert all(count > 0 for count in summary.faults.values())
