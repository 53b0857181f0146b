"""Benchmark: does a run's cost follow its batch, or the history before it?

    python bench/history.py [--orders 200000] [--batches 100]
    python bench/history.py --store 10M

Daily batches (default): TheLook-shaped orders generated once (cached under bench/out/),
split by ``created_at`` into K batches of equal time spans, every item with its order; the
products land whole in the first batch, and each later batch brings a small products file
of a few dozen re-priced products (a shop's daily price changes). Each batch is landed in
one fresh workspace and one real ``ecompipe run`` (a subprocess, ``settle_seconds = 0`` as
bench/pipeline_vs_floor.py's workspaces) follows it. Prints every run's wall time and the
ratio median(last 10) / median(first 10): 1.0 when a run costs what its batch costs.

``--store 10M``: the 10M-item workload of bench/pipeline_vs_floor.py (cached data), split
into the oldest 99 % of orders by ``created_at`` and the newest 1 % (their items with them,
the same small products file). Times one from-scratch run over the whole store (every file
in one run, fresh workspace), and a run of the 1 % batch landing on the store the 99 %
built; prints both and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb
from pipeline_vs_floor import OUT, dataset, fresh_workspace

from ecompipe.contracts import DATASET_NAMES

#: Products re-priced in each later batch.
REPRICED = 30
_CSV = "(FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"')"


def _read(path: Path) -> str:
    """A landed CSV as text columns (values kept byte for byte when written back)."""
    return f"read_csv('{path}', all_varchar = true, header = true, delim = ',', quote = '\"')"


def split(landing: Path, out: Path, cuts: list[float]) -> list[Path]:
    """Split a landing folder by order ``created_at`` into ``len(cuts) + 1`` batch folders
    (``cuts``: fractions of the time span, ascending). Items go with their order; every
    product lands in the first batch, and each later one re-prices REPRICED products."""
    if (out / "done").exists():
        return sorted(p for p in out.iterdir() if p.is_dir())
    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    src = {ds: next((landing / ds).glob("*.csv")) for ds in DATASET_NAMES}
    ts = "CAST(replace(created_at, ' UTC', '') AS TIMESTAMP)"
    con.execute(f"CREATE TABLE o AS SELECT *, epoch({ts}) AS _t FROM {_read(src['orders'])}")
    low, high = con.execute("SELECT min(_t), max(_t) FROM o").fetchone() or (0, 0)
    bounds = [low + (high - low) * c for c in cuts]
    case = " ".join(f"WHEN _t < {b} THEN {i}" for i, b in enumerate(bounds))
    con.execute(
        f"ALTER TABLE o ADD COLUMN _b INTEGER; UPDATE o SET _b = CASE {case} ELSE {len(bounds)} END"
    )
    con.execute(
        f"CREATE TABLE i AS SELECT i.*, o._b FROM {_read(src['order_items'])} i "
        "JOIN o USING (order_id)"
    )
    con.execute(f"CREATE TABLE p AS SELECT * FROM {_read(src['products'])}")
    folders = []
    for b in range(len(bounds) + 1):
        folder = out / f"b{b:04d}"
        for ds in DATASET_NAMES:
            (folder / ds).mkdir(parents=True, exist_ok=True)
        name = f"b{b:04d}.csv"
        con.execute(
            f"COPY (SELECT * EXCLUDE (_t, _b) FROM o WHERE _b = {b}) "
            f"TO '{folder / 'orders' / name}' {_CSV}"
        )
        con.execute(
            f"COPY (SELECT * EXCLUDE (_b) FROM i WHERE _b = {b}) "
            f"TO '{folder / 'order_items' / name}' {_CSV}"
        )
        # Later batches: a few products re-priced (+5 %), the same ones never twice in a row.
        products = (
            "SELECT * FROM p"
            if b == 0
            else "SELECT * REPLACE (CAST(round(CAST(retail_price AS DOUBLE) * 1.05, 2) AS VARCHAR) "
            f"AS retail_price) FROM p WHERE hash(id, {b}) % (SELECT count(*) FROM p) < {REPRICED}"
        )
        con.execute(f"COPY ({products}) TO '{folder / 'products' / name}' {_CSV}")
        folders.append(folder)
    con.close()
    (out / "done").write_text("")
    return folders


def land_and_run(ws: Path, batch: Path | None) -> float:
    """Link a batch's files into the workspace's landing, run once; wall seconds. Without
    a batch: the run that finds nothing to do (exit 3), this machine's floor right now."""
    for src in batch.rglob("*.csv") if batch else ():
        dst = ws / "landing" / src.relative_to(batch)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.hardlink_to(src)
    exe = str(Path(sys.executable).with_name("ecompipe"))
    started = time.perf_counter()
    done = subprocess.run(
        [exe, "run", "--workspace", str(ws), "--quiet"], capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if done.returncode != (0 if batch else 3):
        raise SystemExit(f"ecompipe run failed ({done.returncode}): {done.stderr.strip()}")
    return seconds


def empty_workspace(label: str) -> Path:
    """A fresh workspace with nothing landed (bench/pipeline_vs_floor.fresh_workspace's)."""
    empty = OUT / "empty_landing"
    empty.mkdir(parents=True, exist_ok=True)
    return fresh_workspace(empty, label)


def daily(orders: int, batches: int) -> None:
    """K daily batches, one run after each."""
    from ecompipe.sample import generate_sample

    gen = OUT / f"history_{orders}" / "landing"
    if not (gen / "orders").exists():
        shutil.rmtree(gen.parent, ignore_errors=True)
        generate_sample(gen, orders, seed=1, name="history")
    folders = split(
        gen, OUT / f"history_{orders}" / f"k{batches}", [i / batches for i in range(1, batches)]
    )
    ws = empty_workspace(f"history_{orders}")
    times, floors = [], []
    for n, folder in enumerate(folders, start=1):
        times.append(land_and_run(ws, folder))
        # The machine is shared: the run with nothing to do, right after, is its floor now.
        floors.append(land_and_run(ws, None))
        print(
            f"run {n:4d}: {times[-1]:.3f} s   (nothing-to-do run after it: {floors[-1]:.3f} s)",
            flush=True,
        )
    first, last = statistics.median(times[:10]), statistics.median(times[-10:])
    norm = [t / f for t, f in zip(times, floors, strict=True)]
    n_first, n_last = statistics.median(norm[:10]), statistics.median(norm[-10:])
    print(
        f"\n{orders:,} orders in {batches} daily batches: median of the first 10 runs "
        f"{first:.3f} s, of the last 10 {last:.3f} s; ratio {last / first:.2f} (target <= 1.3)\n"
        f"each run over the nothing-to-do run after it: median of the first 10 "
        f"{n_first:.2f}x, of the last 10 {n_last:.2f}x; ratio {n_last / n_first:.2f}"
    )


def store(label: str) -> None:
    """A 1 % batch on a big store against a from-scratch run over the whole store."""
    landing = dataset(label)
    old, new = split(landing, OUT / f"history_store_{label}", [0.99])
    whole = empty_workspace(f"history_whole_{label}")
    for folder in (old, new):
        for src in folder.rglob("*.csv"):
            dst = whole / "landing" / src.relative_to(folder)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.hardlink_to(src)
    exe = str(Path(sys.executable).with_name("ecompipe"))
    started = time.perf_counter()
    subprocess.run([exe, "run", "--workspace", str(whole), "--quiet"], check=True)
    scratch = time.perf_counter() - started
    shutil.rmtree(whole)
    ws = empty_workspace(f"history_store_{label}")
    built = land_and_run(ws, old)
    batch = land_and_run(ws, new)
    print(
        f"{label} items: from-scratch run over the whole store {scratch:.2f} s; the store "
        f"without its newest 1 % {built:.2f} s; then the 1 % batch {batch:.2f} s: "
        f"{batch / scratch:.1%} of the from-scratch run (target <= 10 %)"
    )


def main() -> None:
    """Run the daily-batches bench, or the 1 % batch on a big store."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200_000, help="orders in all (N)")
    parser.add_argument("--batches", type=int, default=100, help="daily batches (K)")
    parser.add_argument(
        "--store", choices=["1M", "10M"], help="instead: a 1 %% batch on a store of this size"
    )
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    if args.store:
        store(args.store)
    else:
        daily(args.orders, args.batches)


if __name__ == "__main__":
    main()
