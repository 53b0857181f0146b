"""The engine floor: a bare DuckDB script that reads the three CSVs and computes both KPI
tables, nothing else (no validation, no curated store, no metrics store, no archive).

    python bench/floor_duckdb.py LANDING_DIR [MEMORY_LIMIT]

It computes exactly DESIGN.md's definitions (count(DISTINCT) done per order first, then per
day) so the comparison with `ecompipe run` is fair.
"""

from __future__ import annotations

import sys

import duckdb


def main() -> None:
    """Compute the KPI tables from LANDING_DIR and print their row counts."""
    landing = sys.argv[1]
    con = duckdb.connect()
    if len(sys.argv) > 2:
        con.execute(f"SET memory_limit = '{sys.argv[2]}'")
    con.execute("SET TimeZone = 'UTC'")
    opts = "header = true, delim = ',', quote = '\"', escape = '\"'"
    con.execute(
        f"CREATE VIEW o AS SELECT order_id, user_id, CAST(created_at AS TIMESTAMPTZ) AS ts, "
        f"lower(status) = 'returned' AS returned FROM read_csv('{landing}/orders/*.csv', {opts}, "
        "types = {'order_id': 'BIGINT', 'user_id': 'BIGINT', 'created_at': 'VARCHAR', "
        "'status': 'VARCHAR'})"
    )
    con.execute(
        f"CREATE VIEW i AS SELECT order_id, product_id, sale_price FROM "
        f"read_csv('{landing}/order_items/*.csv', {opts}, types = {{'order_id': 'BIGINT', "
        "'product_id': 'BIGINT', 'sale_price': 'DECIMAL(18,6)'})"
    )
    con.execute(
        f"CREATE VIEW p AS SELECT id, category FROM read_csv('{landing}/products/*.csv', {opts}, "
        "types = {'id': 'BIGINT', 'category': 'VARCHAR'})"
    )
    con.execute(
        "CREATE TABLE od AS SELECT order_id, user_id, CAST(ts AS DATE) AS d, returned FROM o"
    )
    n_orders = con.execute(
        "SELECT count(*) FROM (SELECT d, count(*) AS total_orders, sum(rev), sum(n), "
        "avg(returned::INT), count(DISTINCT user_id) FROM (SELECT order_id, sum(sale_price) AS "
        "rev, count(*) AS n FROM i GROUP BY order_id) po JOIN od USING (order_id) GROUP BY d)"
    ).fetchone()
    n_cats = con.execute(
        "SELECT count(*) FROM (SELECT category, d, sum(rev), sum(rev) / count(*), "
        "avg(returned::INT) FROM (SELECT i.order_id, p.category, sum(sale_price) AS rev FROM i "
        "JOIN p ON i.product_id = p.id GROUP BY 1, 2) pc JOIN od USING (order_id) GROUP BY 1, 2)"
    ).fetchone()
    print(f"order_metrics rows: {n_orders}, category_metrics rows: {n_cats}")


if __name__ == "__main__":
    main()
