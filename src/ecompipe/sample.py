"""Sample data generator: TheLook-shaped ``orders``, ``order_items`` and ``products`` CSVs.

Everything is generated inside DuckDB with set-based SQL (no Python loop per row), so a million
order items take a few seconds. Randomness comes from an integer hash of (seed, row index, salt)
written with plain arithmetic: unlike ``random()``/``setseed`` it does not depend on how DuckDB
splits the work between threads, and unlike ``hash()`` it does not depend on the DuckDB version,
so the same arguments always give byte-identical files.

``dirty=True`` injects the faults the pipeline must survive (bad values, missing values, negative
money, duplicates, conflicting keys, orphan items, a file without a required column, BOM + CRLF +
messy header names), and counts what it injected so tests can compare verdicts with the truth.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ecompipe import progress

# --------------------------------------------------------------------------------------------
# Shapes (TheLook's column lists, extra columns included: the pipeline must ignore them)
# --------------------------------------------------------------------------------------------

_ORDERS = "orders"
_ITEMS = "order_items"
_PRODUCTS = "products"

_COLUMNS: dict[str, tuple[str, ...]] = {
    _ORDERS: (
        "order_id",
        "user_id",
        "status",
        "gender",
        "created_at",
        "returned_at",
        "shipped_at",
        "delivered_at",
        "num_of_item",
    ),
    _ITEMS: (
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
    ),
    _PRODUCTS: (
        "id",
        "cost",
        "category",
        "name",
        "brand",
        "retail_price",
        "department",
        "sku",
        "distribution_center_id",
    ),
}

# Dirty orders files get the header spellings other exports produce; validation trims header
# names and matches them case-insensitively. The BOM rides on the first header name, which makes
# DuckDB write it as the file's first three bytes.
_DIRTY_ORDERS_HEADER: dict[str, str] = {
    "order_id": "\ufeffOrder_ID",
    "user_id": "User_ID",
    "status": " status ",
    "gender": "Gender",
    "created_at": "Created_At ",
    "returned_at": "returned_at",
    "shipped_at": " Shipped_At",
    "delivered_at": "Delivered_at",
    "num_of_item": "Num_Of_Item",
}

# TheLook's 26 categories, the department(s) they appear under there, and a product noun.
_CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("Accessories", "Both", "Leather Belt"),
    ("Active", "Both", "Performance Tee"),
    ("Blazers & Jackets", "Women", "Tailored Blazer"),
    ("Clothing Sets", "Women", "Two Piece Set"),
    ("Dresses", "Women", "Maxi Dress"),
    ("Fashion Hoodies & Sweatshirts", "Both", "Pullover Hoodie"),
    ("Intimates", "Women", "Lace Bralette"),
    ("Jeans", "Both", "Slim Fit Jean"),
    ("Jumpsuits & Rompers", "Women", "Romper"),
    ("Leggings", "Women", "High Waist Legging"),
    ("Maternity", "Women", "Maternity Tunic"),
    ("Outerwear & Coats", "Both", "Down Parka"),
    ("Pants", "Men", "Chino Pant"),
    ("Pants & Capris", "Women", "Cropped Capri"),
    ("Plus", "Women", "Plus Size Cardigan"),
    ("Shorts", "Both", "Cargo Short"),
    ("Skirts", "Women", "Pleated Skirt"),
    ("Sleep & Lounge", "Both", "Pajama Set"),
    ("Socks", "Men", "Crew Socks 6-Pack"),
    ("Socks & Hosiery", "Women", "Sheer Tights"),
    ("Suits", "Women", "Pant Suit"),
    ("Suits & Sport Coats", "Men", "Wool Sport Coat"),
    ("Sweaters", "Both", "Crewneck Sweater"),
    ("Swim", "Both", "Swimsuit"),
    ("Tops & Tees", "Both", "Crew Neck Tee"),
    ("Underwear", "Men", "Boxer Brief 3-Pack"),
)
_BRANDS = (
    "Calvin Klein",
    "Carhartt",
    "Hanes",
    "Levi's",
    "Columbia",
    "Allegra K",
    "Tommy Hilfiger",
    "Volcom",
    "Quiksilver",
    "Nike",
    "Dockers",
    "2XU",
    "Speedo",
    "Champion",
    "Diesel",
    "Lucky Brand",
    "FineBrandShop",
    "Hurley",
    "Alternative",
    "Fruit of the Loom",
    "Jockey",
    "True Religion",
    "Wrangler",
    "Puma",
    "Under Armour",
    "Patagonia",
    "The North Face",
    "Adidas",
)
_ADJECTIVES = (
    "Classic",
    "Essential",
    "Vintage",
    "Slim",
    "Relaxed",
    "Premium",
    "Stretch",
    "Organic Cotton",
    "Lightweight",
    "Heritage",
)
_COLORS = ("Black", "Navy", "Heather Grey", "Olive", "Burgundy", "White")

# UTC offsets used for the "+HH:MM" spelling of created_at. Large ones (+09:00, +10:00, -08:00)
# move many local times onto another calendar day than the UTC instant, which is the point.
_OFFSETS: tuple[tuple[int, str], ...] = (
    (120, "+02:00"),
    (-300, "-05:00"),
    (330, "+05:30"),
    (540, "+09:00"),
    (-480, "-08:00"),
    (60, "+01:00"),
    (-180, "-03:00"),
    (600, "+10:00"),
    (0, "+00:00"),
)

# created_at covers [2019-01-01 00:00:00, 2026-01-01 00:00:00) UTC.
_START_EPOCH_S = 1_546_300_800  # 2019-01-01T00:00:00Z
_SPAN_S = 2557 * 86_400  # 2019..2025 inclusive, two leap years

# Largest prime below 2**32: hash state stays < 2**32, so state * multiplier (< 2**31) fits a
# signed BIGINT and DuckDB never raises an overflow.
_HASH_PRIME = 4_294_967_291

# --------------------------------------------------------------------------------------------
# Faults (dirty mode)
# --------------------------------------------------------------------------------------------

_FAULT_KINDS = (
    "bad_type",
    "missing_value",
    "negative_price",
    "duplicate_row",
    "conflicting_key",
    "orphan_item",
    "missing_column",
)

# Kinds that make a row rejected, in the order rows are assigned to them. Together they stay
# under _REJECT_BUDGET of a file so the file is accepted with rejected rows, never rejected whole
# (the default max_error_rate is 5 %).
_ROW_KINDS = ("bad_type", "missing_value", "negative_price", "conflicting_key")
_REJECT_BUDGET = 0.04

# Fraction of each main file's rows per fault kind (roughly 1-2 % bad in total).
_FAULT_RATES: dict[str, dict[str, float]] = {
    _ORDERS: {
        "bad_type": 0.006,
        "missing_value": 0.004,
        "conflicting_key": 0.002,
        "duplicate_row": 0.003,
    },
    _ITEMS: {
        "bad_type": 0.005,
        "missing_value": 0.003,
        "negative_price": 0.003,
        "conflicting_key": 0.002,
        "duplicate_row": 0.003,
    },
    _PRODUCTS: {
        "bad_type": 0.005,
        "missing_value": 0.003,
        "negative_price": 0.003,
        "conflicting_key": 0.002,
        "duplicate_row": 0.002,
    },
}
_ORPHAN_RATE = 0.001
_NOCOL_ROWS = 5

# Distinct hash salts per dataset so fault selection is independent of the data columns.
_PLAN_SALT = {_ORDERS: 900, _ITEMS: 910, _PRODUCTS: 920}

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class SampleSummary:
    """What :func:`generate_sample` wrote.

    ``files`` and ``rows`` are keyed by dataset name (``orders``, ``order_items``,
    ``products``). ``faults`` maps each injected fault kind to how many were injected; it is
    empty for clean data. The dirty-mode ``missing_column`` file is not a dataset's main file:
    it is ``order_items/order_items_<name>_nocol.csv`` next to the main one.
    """

    files: dict[str, Path]
    rows: dict[str, int]
    faults: dict[str, int]


def generate_sample(
    landing: Path,
    orders: int,
    seed: int = 42,
    dirty: bool = False,
    name: str | None = None,
    prefixes: Mapping[str, str] | None = None,
) -> SampleSummary:
    """Write TheLook-shaped CSVs into ``landing/{orders,order_items,products}/<name>.csv``.

    ``prefixes`` maps a dataset to its landing folder when it is not the dataset's name
    (ORDERS_PATH and friends).

    Files are ``<dataset>_<name>.csv`` with ``name`` defaulting to ``s<seed>_n<orders>``
    (``orders/orders_s42_n1000.csv``). Output is a pure function of the arguments: the same
    arguments give byte-identical files, another seed gives other data.

    Shape: order ids 1..orders, about orders/2 users, 1-4 items per order with consecutive item
    ids, ``max(50, min(orders // 5, 30000))`` products, every item's order and product exist.
    With ``dirty=True`` the files also carry faults, counted in ``faults`` under exactly these
    keys: ``bad_type``, ``missing_value``, ``negative_price``, ``duplicate_row``,
    ``conflicting_key``, ``orphan_item``, ``missing_column``. The orders file then has a UTF-8
    BOM, CRLF line ends and messy header names, and one extra
    ``order_items/order_items_<name>_nocol.csv`` lacks the ``sale_price`` column.

    Files are written to a private temporary folder first and then linked into place without
    overwriting, so a watcher on ``landing`` never sees a half-written CSV.

    Raises:
        ValueError: ``orders`` < 1 or ``name`` is not a plain file-name fragment.
        FileExistsError: a target file exists already (nothing is written then).
    """
    if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
        raise ValueError(f"orders must be a positive integer, got {orders!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if name is None:
        name = f"s{seed}_n{orders}"
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"sample name {name!r} must be 1-100 characters of letters, digits, '.', '_', '-' "
            "and start with a letter or digit"
        )

    landing = Path(landing)
    folder = {ds: landing / (prefixes or {}).get(ds, ds) for ds in _COLUMNS}
    targets = {ds: folder[ds] / f"{ds}_{name}.csv" for ds in _COLUMNS}
    nocol_target = folder[_ITEMS] / f"{_ITEMS}_{name}_nocol.csv"
    all_targets = [*targets.values(), *([nocol_target] if dirty else [])]
    # Check everything before writing anything: a refused call leaves no partial set behind.
    existing = [p for p in all_targets if os.path.lexists(p)]
    if existing:
        raise FileExistsError(
            f"sample file already exists: {existing[0]} (pick another name or remove it)"
        )
    for ds in _COLUMNS:
        folder[ds].mkdir(parents=True, exist_ok=True)

    n_users = max(1, orders // 2)
    n_products = max(50, min(orders // 5, 30_000))

    work = _make_workdir(landing)
    try:
        con = duckdb.connect()
        try:
            # Spill (if ever) into our temp folder, not DuckDB's default ./.tmp in the cwd.
            con.execute(f"SET temp_directory = {_q(str(work / 'spill'))}")
            con.execute("SET preserve_insertion_order = true")
            # Library code: no progress bar on the caller's terminal.
            con.execute("SET enable_progress_bar = false")
            progress.report("generate", 0, len(all_targets), "files")
            _create_macros(con, seed)
            _create_lookups(con)
            con.execute(_products_sql(n_products))
            con.execute(_orders_sql(orders, n_users))
            con.execute(_items_view_sql(n_products))
            n_items = _scalar_int(con, "SELECT sum(num_of_item) FROM orders_t")

            sizes = {_ORDERS: orders, _ITEMS: n_items, _PRODUCTS: n_products}
            plans = {ds: _plan_counts(ds, sizes[ds], dirty) for ds in _COLUMNS}
            for ds, counts in plans.items():
                con.execute(_plan_sql(ds, sizes[ds], counts))
            n_orphans = max(1, round(_ORPHAN_RATE * n_items)) if dirty else 0

            queries = {
                _ORDERS: _orders_out_sql(orders, dirty),
                _ITEMS: _items_out_sql(n_items, orders, n_users, n_products, n_orphans),
                _PRODUCTS: _products_out_sql(n_products),
            }
            rows: dict[str, int] = {}
            staged: dict[Path, Path] = {}
            for ds, query in queries.items():
                tmp = work / targets[ds].name
                crlf = dirty and ds == _ORDERS
                rows[ds] = _copy(con, query, tmp, crlf=crlf)
                staged[tmp] = targets[ds]
                progress.report("generate", len(staged), len(all_targets), "files")
            if dirty:
                tmp = work / nocol_target.name
                _copy(con, _nocol_sql(n_items + n_orphans, orders, n_products), tmp, crlf=False)
                staged[tmp] = nocol_target
                progress.report("generate", len(staged), len(all_targets), "files")
        finally:
            con.close()

        for tmp, final in staged.items():
            _publish(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    faults: dict[str, int] = {}
    if dirty:
        for kind in _FAULT_KINDS:
            faults[kind] = sum(plan.get(kind, 0) for plan in plans.values())
        faults["orphan_item"] = n_orphans
        faults["missing_column"] = 1
    return SampleSummary(files=dict(targets), rows=rows, faults=faults)


# --------------------------------------------------------------------------------------------
# Helpers: files
# --------------------------------------------------------------------------------------------


def _make_workdir(landing: Path) -> Path:
    """A private staging folder, beside ``landing`` so publishing is a same-filesystem link.

    Not inside ``landing``: every entry there is a candidate for the pipeline.
    """
    try:
        return Path(tempfile.mkdtemp(prefix=".ecompipe-sample-", dir=landing.resolve().parent))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="ecompipe-sample-"))


def _publish(src: Path, dst: Path) -> None:
    """Move a finished file into place atomically and without ever overwriting ``dst``."""
    exists = f"sample file already exists: {dst} (pick another name or remove it)"
    try:
        os.link(src, dst)  # atomic; fails if dst exists
        return
    except FileExistsError:
        raise FileExistsError(exists) from None
    except OSError:
        pass  # other filesystem or no hard links: fall back to an exclusive-create copy
    try:
        fout = dst.open("xb")
    except FileExistsError:
        raise FileExistsError(exists) from None
    try:
        with fout, src.open("rb") as fin:
            shutil.copyfileobj(fin, fout, 1 << 20)
    except BaseException:
        dst.unlink(missing_ok=True)  # ours: created above, never someone else's file
        raise


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, *, crlf: bool) -> int:
    """Write ``query`` as CSV (UTF-8, header, quoted only where needed); return the row count."""
    newline = "\\r\\n" if crlf else "\\n"
    return _scalar_int(
        con,
        f"COPY ({query}) TO {_q(str(path))} "
        f"(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', NEW_LINE E'{newline}')",
    )


def _scalar_int(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    if row is None or row[0] is None:
        return 0
    return int(row[0])


# --------------------------------------------------------------------------------------------
# Helpers: SQL
# --------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _ident(text: str) -> str:
    """A SQL quoted identifier."""
    return '"' + text.replace('"', '""') + '"'


def _str_list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(s) for s in items) + "]"


def _seed_state(seed: int) -> int:
    # Hash the seed in Python (stable across platforms) so nearby seeds give unrelated streams.
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _HASH_PRIME


def _create_macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """Hash, uniform and formatting macros; the seed is baked into ``_h``."""
    p = _HASH_PRIME
    s = _seed_state(seed)
    con.execute(f"""
        CREATE MACRO _mix0(k, salt) AS (k::BIGINT * 1000003 + salt * 2654435761 + {s}) % {p};
        CREATE MACRO _xs(x, n) AS xor(x, x >> n);
        -- xorshift / multiply rounds (murmur-style finaliser) modulo a prime below 2**32
        CREATE MACRO _h(k, salt) AS
            _xs((_xs((_xs(_mix0(k, salt), 16) * 2073658381) % {p}, 15) * 1807526813) % {p}, 16);
        CREATE MACRO _u(k, salt) AS _h(k, salt) / 4294967296.0;
        CREATE MACRO _money2(c) AS
            (c // 100)::VARCHAR || '.' || lpad((c % 100)::VARCHAR, 2, '0');
        -- TheLook stores prices as float32 widened to double: 59.99 -> 59.9900016784668
        CREATE MACRO _money_f32(c) AS CAST(CAST(c / 100 AS FLOAT) AS DOUBLE)::VARCHAR;
        CREATE MACRO _ts_thelook(t) AS strftime(t, '%Y-%m-%d %H:%M:%S.%f') || ' UTC';
        CREATE MACRO _bad_int(x, k) AS
            [x || 'a', x || '.0', '#' || x, '\u0661\u0662\u0663'][(k % 4) + 1];
        CREATE MACRO _bad_ts(x, k) AS [
            '2023-13-45 99:00:00',
            'yesterday',
            substr(x, 1, 10),
            substr(x, 9, 2) || '/' || substr(x, 6, 2) || '/' || substr(x, 1, 4)
                || ' ' || substr(x, 12, 5)
        ][(k % 4) + 1];
        CREATE MACRO _bad_money(c, k) AS [
            replace(_money2(c), '.', ','),
            '$' || _money2(c),
            'NaN',
            '1e3',
            'inf',
            '1,' || lpad(_money2(c), 6, '0'),
            '9999999999999.99',
            '\u0661\u0662.\u0665\u0660'
        ][(k % 8) + 1];
    """)


def _create_lookups(con: duckdb.DuckDBPyConnection) -> None:
    cats = ", ".join(f"({i}, {_q(c)}, {_q(d)}, {_q(n)})" for i, (c, d, n) in enumerate(_CATEGORIES))
    brands = ", ".join(f"({i}, {_q(b)})" for i, b in enumerate(_BRANDS))
    con.execute(f"""
        CREATE TEMP TABLE cats(ci BIGINT, category VARCHAR, dept_rule VARCHAR, noun VARCHAR);
        INSERT INTO cats VALUES {cats};
        CREATE TEMP TABLE brands(bi BIGINT, brand VARCHAR);
        INSERT INTO brands VALUES {brands};
    """)


def _products_sql(n_products: int) -> str:
    n_cats = len(_CATEGORIES)
    return f"""
    CREATE TEMP TABLE products_t AS
    WITH b AS (
        SELECT
            p AS id,
            -- the first 26 products cover every category; then categories are random
            CASE WHEN p <= {n_cats} THEN p - 1 ELSE _h(p, 101) % {n_cats} END AS ci,
            -- log-uniform dollars 3..299 with retail-looking endings
            floor(exp(ln(3) + _u(p, 102) * ln(100)))::BIGINT AS dollars,
            _h(p, 103) % 100 AS end_roll,
            _h(p, 104) % 100 AS cents_rand,
            0.35 + 0.25 * _u(p, 105) AS cost_ratio,
            _h(p, 106) % 10 AS retail_fmt,
            _h(p, 107) % 10 AS cost_fmt,
            _h(p, 108) % 2 AS dept_roll,
            _h(p, 109) % {len(_BRANDS)} AS bi,
            _h(p, 110) % {len(_ADJECTIVES)} + 1 AS ai,
            _h(p, 111) % 100 AS name_roll,
            _h(p, 112) % {len(_COLORS)} + 1 AS coli,
            upper(lpad(to_hex(_h(p, 113)), 8, '0') || lpad(to_hex(_h(p, 114)), 8, '0')
                || lpad(to_hex(_h(p, 115)), 8, '0') || lpad(to_hex(_h(p, 116)), 8, '0')) AS sku,
            1 + _h(p, 117) % 10 AS dc
        FROM range(1, {n_products} + 1) t(p)
    ), c AS (
        SELECT b.*, cats.category, cats.noun, brands.brand,
            CASE cats.dept_rule WHEN 'Both' THEN CASE dept_roll WHEN 0 THEN 'Women' ELSE 'Men' END
                ELSE cats.dept_rule END AS department,
            dollars * 100 + CASE WHEN end_roll < 60 THEN 99 WHEN end_roll < 80 THEN 0
                WHEN end_roll < 90 THEN 50 ELSE cents_rand END AS retail_cents
        FROM b JOIN cats USING (ci) JOIN brands USING (bi)
    ), d AS (
        SELECT c.*, greatest(1, floor(retail_cents * cost_ratio))::BIGINT AS cost_cents FROM c
    )
    SELECT
        id,
        retail_cents,
        cost_cents,
        -- 30 % / 40 % carry TheLook's float artefacts (more than 6 decimals), else 2 decimals
        CASE WHEN cost_fmt < 4 THEN _money_f32(cost_cents) ELSE _money2(cost_cents) END
            AS cost_txt,
        category,
        brand || ' ' || CASE department WHEN 'Men' THEN 'Men''s' ELSE 'Women''s' END || ' '
            || {_str_list(_ADJECTIVES)}[ai] || ' ' || noun
            || CASE WHEN name_roll < 6 THEN ', ' || {_str_list(_COLORS)}[coli]
                    WHEN name_roll < 20 AND category IN ('Jeans', 'Shorts', 'Swim')
                        THEN ' 9" Inseam' ELSE '' END AS name,
        brand,
        CASE WHEN retail_fmt < 3 THEN _money_f32(retail_cents) ELSE _money2(retail_cents) END
            AS retail_txt,
        department,
        sku,
        dc
    FROM d
    """


def _orders_sql(n_orders: int, n_users: int) -> str:
    off_minutes = "[" + ", ".join(str(m) for m, _ in _OFFSETS) + "]"
    off_texts = _str_list(t for _, t in _OFFSETS)
    return f"""
    CREATE TEMP TABLE orders_t AS
    WITH b AS (
        SELECT
            o AS order_id,
            1 + _h(o, 201) % {n_users} AS user_id,
            _u(o, 202) AS st_u,
            _h(o, 203) % 100 AS case_roll,
            _h(o, 204) % 2 AS g_roll,
            -- pow(u, 0.7): more orders in later years, like a growing shop
            make_timestamp(
                ({_START_EPOCH_S} + floor(pow(_u(o, 205), 0.7) * {_SPAN_S})::BIGINT) * 1000000
                + _h(o, 206) % 1000000) AS created_utc,
            _h(o, 207) % 100 AS fmt_roll,
            _h(o, 208) % {len(_OFFSETS)} + 1 AS off_i,
            _h(o, 209) % 2 AS frac_roll,
            3600 + _h(o, 210) % 255600 AS ship_s,
            86400 + _h(o, 211) % 345600 AS deliver_s,
            86400 + _h(o, 212) % 1209600 AS return_s,
            1 + _h(o, 213) % 4 AS num_of_item
        FROM range(1, {n_orders} + 1) t(o)
    ), s AS (
        SELECT b.*,
            CASE WHEN st_u < 0.10 THEN 'Returned' WHEN st_u < 0.25 THEN 'Cancelled'
                 WHEN st_u < 0.45 THEN 'Processing' WHEN st_u < 0.75 THEN 'Shipped'
                 ELSE 'Complete' END AS status0
        FROM b
    ), t1 AS (
        SELECT s.*,
            CASE WHEN status0 IN ('Shipped', 'Complete', 'Returned')
                 THEN created_utc + to_seconds(ship_s) END AS shipped_utc
        FROM s
    ), t2 AS (
        SELECT t1.*,
            CASE WHEN status0 IN ('Complete', 'Returned')
                 THEN shipped_utc + to_seconds(deliver_s) END AS delivered_utc
        FROM t1
    ), t3 AS (
        SELECT t2.*,
            CASE WHEN status0 = 'Returned' THEN delivered_utc + to_seconds(return_s) END
                AS returned_utc
        FROM t2
    )
    SELECT
        order_id,
        user_id,
        status0,
        -- about 1 % lowercase, as other exports write it
        CASE WHEN case_roll = 0 THEN lower(status0) ELSE status0 END AS status,
        CASE WHEN g_roll = 0 THEN 'F' ELSE 'M' END AS gender,
        created_utc,
        -- 80 % TheLook style, 10 % ISO 'Z', 10 % local time with offset (same UTC instant)
        CASE WHEN fmt_roll < 80 THEN _ts_thelook(created_utc)
             WHEN fmt_roll < 90 THEN strftime(created_utc, '%Y-%m-%dT%H:%M:%SZ')
             ELSE strftime(created_utc + to_minutes({off_minutes}[off_i]), '%Y-%m-%dT%H:%M:%S')
                  || CASE WHEN frac_roll = 0 THEN '.' || strftime(created_utc, '%f')[1:3]
                          ELSE '' END
                  || {off_texts}[off_i]
        END AS created_txt,
        _ts_thelook(shipped_utc) AS shipped_txt,
        _ts_thelook(delivered_utc) AS delivered_txt,
        _ts_thelook(returned_utc) AS returned_txt,
        num_of_item
    FROM t3
    """


def _items_view_sql(n_products: int) -> str:
    return f"""
    CREATE TEMP VIEW items_v AS
    WITH oi AS (
        SELECT order_id, user_id, status, created_utc, shipped_txt, delivered_txt, returned_txt,
            num_of_item,
            -- consecutive item ids in order_id order
            (sum(num_of_item) OVER (ORDER BY order_id ROWS BETWEEN UNBOUNDED PRECEDING
                AND CURRENT ROW))::BIGINT - num_of_item AS first_id
        FROM orders_t
    ), ex AS (
        SELECT oi.*, unnest(range(num_of_item)) AS j FROM oi
    ), it AS (
        SELECT ex.*, first_id + j + 1 AS id FROM ex
    ), ip AS (
        -- mildly skewed popularity: low product ids sell more
        SELECT it.*, 1 + floor({n_products} * pow(_u(id, 301), 1.3))::BIGINT AS product_id
        FROM it
    )
    SELECT
        ip.id,
        ip.order_id,
        ip.user_id,
        ip.product_id,
        ip.id * 2 + _h(ip.id, 302) % 2 AS inventory_item_id,
        ip.status,
        _ts_thelook(ip.created_utc + to_seconds(_h(ip.id, 303) % 60)) AS created_txt,
        ip.shipped_txt,
        ip.delivered_txt,
        ip.returned_txt,
        p.retail_txt AS sale_price_txt,
        p.retail_cents
    FROM ip JOIN products_t p ON p.id = ip.product_id
    """


def _plan_counts(ds: str, n_rows: int, dirty: bool) -> dict[str, int]:
    """How many rows of ``ds`` get each row-level fault.

    At least one of each kind (so small samples still show every fault), but the rejected kinds
    share a budget of ``_REJECT_BUDGET`` of the file: the file must stay acceptable.
    """
    if not dirty:
        return {}
    rates = _FAULT_RATES[ds]
    budget = int(n_rows * _REJECT_BUDGET)
    counts: dict[str, int] = {}
    for kind in _ROW_KINDS:
        if kind in rates:
            want = max(1, round(rates[kind] * n_rows))
            counts[kind] = min(want, budget)
            budget -= counts[kind]
    # Exact repeats are dropped, not rejected: outside the budget, but never more than the file.
    counts["duplicate_row"] = min(n_rows, max(1, round(rates["duplicate_row"] * n_rows)))
    return {k: v for k, v in counts.items() if v > 0}


def _plan_sql(ds: str, n_rows: int, counts: Mapping[str, int]) -> str:
    """A small table: which row (by key) gets which fault, plus two hash picks per row.

    Rows are drawn without replacement (top-k of a hash), so faults never overlap.
    """
    salt = _PLAN_SALT[ds]
    total = sum(counts.values())
    bounds: list[str] = []
    upto = 0
    for kind in (*_ROW_KINDS, "duplicate_row"):
        if counts.get(kind, 0):
            upto += counts[kind]
            bounds.append(f"WHEN fr <= {upto} THEN {_q(kind)}")
    kind_expr = f"CASE {' '.join(bounds)} END" if bounds else "NULL::VARCHAR"
    return f"""
    CREATE TEMP TABLE plan_{ds} AS
    SELECT rn, {kind_expr} AS kind, _h(rn, {salt + 1}) AS pick, _h(rn, {salt + 2}) AS pick2
    FROM (
        SELECT rn, row_number() OVER (ORDER BY hv, rn) AS fr
        FROM (
            SELECT rn, _h(rn, {salt}) AS hv FROM range(1, {n_rows} + 1) t(rn)
            ORDER BY hv, rn LIMIT {total}
        )
    )
    """


def _with_faults(source: str, key: str, ds: str, n_rows: int) -> str:
    """``source`` joined to its fault plan; a duplicated/conflicting row appears twice (_v=1).

    The copy goes a little later in the file (``_pos``), after its original, like an
    overlapping re-export. ``_rn`` is the row's key, the final tie-breaker.
    """
    return f"""
        SELECT *, CASE WHEN _v = 1 THEN least({n_rows}, _rn + 1 + pick2 % 50) ELSE _rn END AS _pos
        FROM (
            SELECT x.*, x.{key} AS _rn, f.kind, f.pick, f.pick2,
                unnest(CASE WHEN f.kind IN ('duplicate_row', 'conflicting_key') THEN [0, 1]
                            ELSE [0] END) AS _v
            FROM ({source}) x LEFT JOIN plan_{ds} f ON f.rn = x.{key}
        )
    """


def _order_by_columns(columns: Iterable[tuple[str, str]], inner: str) -> str:
    select = ",\n        ".join(f"{expr} AS {_ident(alias)}" for expr, alias in columns)
    return f"SELECT\n        {select}\n    FROM ({inner})\n    ORDER BY _pos, _v, _rn"


def _orders_out_sql(n_orders: int, dirty: bool) -> str:
    faulted = _with_faults("SELECT * FROM orders_t", "order_id", _ORDERS, n_orders)
    inner = f"""
        SELECT
            CASE WHEN kind = 'bad_type' AND pick % 3 = 0 THEN _bad_int(order_id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 0 THEN NULL
                 ELSE order_id::VARCHAR END AS order_id,
            CASE WHEN kind = 'bad_type' AND pick % 3 = 1 THEN _bad_int(user_id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 1 THEN NULL
                 ELSE user_id::VARCHAR END AS user_id,
            CASE WHEN kind = 'missing_value' AND pick % 4 = 2 THEN NULL
                 -- a later re-export with another status
                 WHEN kind = 'conflicting_key' AND _v = 1
                     THEN CASE status0 WHEN 'Complete' THEN 'Returned' ELSE 'Complete' END
                 ELSE status END AS status,
            gender,
            CASE WHEN kind = 'bad_type' AND pick % 3 = 2 THEN _bad_ts(created_txt, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 3 THEN NULL
                 ELSE created_txt END AS created_at,
            returned_txt AS returned_at,
            shipped_txt AS shipped_at,
            delivered_txt AS delivered_at,
            num_of_item::VARCHAR AS num_of_item,
            _rn, _v, _pos
        FROM ({faulted})
    """
    header = _DIRTY_ORDERS_HEADER if dirty else {c: c for c in _COLUMNS[_ORDERS]}
    return _order_by_columns(((c, header[c]) for c in _COLUMNS[_ORDERS]), inner)


def _items_out_sql(
    n_items: int, n_orders: int, n_users: int, n_products: int, n_orphans: int
) -> str:
    faulted = _with_faults("SELECT * FROM items_v", "id", _ITEMS, n_items)
    main = f"""
        SELECT
            CASE WHEN kind = 'bad_type' AND pick % 4 = 0 THEN _bad_int(id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 0 THEN NULL
                 ELSE id::VARCHAR END AS id,
            CASE WHEN kind = 'bad_type' AND pick % 4 = 1 THEN _bad_int(order_id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 1 THEN NULL
                 ELSE order_id::VARCHAR END AS order_id,
            user_id::VARCHAR AS user_id,
            CASE WHEN kind = 'bad_type' AND pick % 4 = 2
                     THEN _bad_int(product_id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 2 THEN NULL
                 ELSE product_id::VARCHAR END AS product_id,
            inventory_item_id::VARCHAR AS inventory_item_id,
            status,
            created_txt AS created_at,
            shipped_txt AS shipped_at,
            delivered_txt AS delivered_at,
            returned_txt AS returned_at,
            CASE WHEN kind = 'bad_type' AND pick % 4 = 3 THEN _bad_money(retail_cents, pick2)
                 WHEN kind = 'missing_value' AND pick % 4 = 3 THEN NULL
                 WHEN kind = 'negative_price' THEN '-' || sale_price_txt
                 -- same item re-exported with another (valid) price
                 WHEN kind = 'conflicting_key' AND _v = 1 THEN _money2(retail_cents + 100)
                 ELSE sale_price_txt END AS sale_price,
            _rn, _v, _pos
        FROM ({faulted})
    """
    # Orphans: items of orders N+1.. that are not in the orders file (they arrive later).
    orphans = f"""
        SELECT
            ({n_items} + i)::VARCHAR AS id,
            ({n_orders} + i)::VARCHAR AS order_id,
            (1 + _h({n_items} + i, 401) % {n_users})::VARCHAR AS user_id,
            p.id::VARCHAR AS product_id,
            (({n_items} + i) * 2)::VARCHAR AS inventory_item_id,
            'Processing' AS status,
            _ts_thelook(make_timestamp(({_START_EPOCH_S}
                + floor(_u({n_items} + i, 403) * {_SPAN_S})::BIGINT) * 1000000)) AS created_at,
            NULL::VARCHAR AS shipped_at,
            NULL::VARCHAR AS delivered_at,
            NULL::VARCHAR AS returned_at,
            p.retail_txt AS sale_price,
            {n_items} + i AS _rn, 0 AS _v, {n_items} + i AS _pos
        FROM range(1, {n_orphans} + 1) t(i)
        JOIN products_t p ON p.id = 1 + _h({n_items} + i, 402) % {n_products}
    """
    inner = f"{main}\n UNION ALL BY NAME\n {orphans}" if n_orphans else main
    return _order_by_columns(((c, c) for c in _COLUMNS[_ITEMS]), inner)


def _products_out_sql(n_products: int) -> str:
    faulted = _with_faults("SELECT * FROM products_t", "id", _PRODUCTS, n_products)
    inner = f"""
        SELECT
            CASE WHEN kind = 'bad_type' AND pick % 3 = 0 THEN _bad_int(id::VARCHAR, pick2)
                 WHEN kind = 'missing_value' AND pick % 5 = 0 THEN NULL
                 ELSE id::VARCHAR END AS id,
            CASE WHEN kind = 'bad_type' AND pick % 3 = 1 THEN _bad_money(cost_cents, pick2)
                 WHEN kind = 'missing_value' AND pick % 5 = 1 THEN NULL
                 WHEN kind = 'negative_price' AND pick % 2 = 0 THEN '-' || cost_txt
                 ELSE cost_txt END AS cost,
            CASE WHEN kind = 'missing_value' AND pick % 5 = 2 THEN NULL
                 ELSE category END AS category,
            name,
            brand,
            CASE WHEN kind = 'bad_type' AND pick % 3 = 2 THEN _bad_money(retail_cents, pick2)
                 WHEN kind = 'missing_value' AND pick % 5 = 3 THEN NULL
                 WHEN kind = 'negative_price' AND pick % 2 = 1 THEN '-' || retail_txt
                 -- a price change re-exported under the same id
                 WHEN kind = 'conflicting_key' AND _v = 1 THEN _money2(retail_cents + 500)
                 ELSE retail_txt END AS retail_price,
            department,
            CASE WHEN kind = 'missing_value' AND pick % 5 = 4 THEN NULL
                 ELSE sku END AS sku,
            dc::VARCHAR AS distribution_center_id,
            _rn, _v, _pos
        FROM ({faulted})
    """
    return _order_by_columns(((c, c) for c in _COLUMNS[_PRODUCTS]), inner)


def _nocol_sql(first_id: int, n_orders: int, n_products: int) -> str:
    """A few valid-looking items in a file that lacks the required ``sale_price`` column."""
    cols = [c for c in _COLUMNS[_ITEMS] if c != "sale_price"]
    return f"""
    SELECT {", ".join(cols)} FROM (
        SELECT
            ({first_id} + i)::VARCHAR AS id,
            o.order_id::VARCHAR AS order_id,
            o.user_id::VARCHAR AS user_id,
            (1 + _h({first_id} + i, 502) % {n_products})::VARCHAR AS product_id,
            (({first_id} + i) * 2)::VARCHAR AS inventory_item_id,
            o.status,
            _ts_thelook(o.created_utc) AS created_at,
            o.shipped_txt AS shipped_at,
            o.delivered_txt AS delivered_at,
            o.returned_txt AS returned_at,
            i
        FROM range(1, {_NOCOL_ROWS} + 1) t(i)
        JOIN orders_t o ON o.order_id = 1 + _h({first_id} + i, 501) % {n_orders}
    ) ORDER BY i
    """
