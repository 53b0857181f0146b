"""Benchmark: the whole `ecompipe run` against the engine floor (bench/floor_duckdb.py).

    python bench/pipeline_vs_floor.py [--items 1M,10M] [--shape plain|quoted|files500 [--files N]]

For each size: generate TheLook-shaped data once (cached under bench/out/), then in one run
time (a) the bare DuckDB script and (b) `ecompipe run` on a fresh workspace holding the same
files (hard links, no copy), and print wall time, peak RSS of the process tree, and the ratio.
``--shape quoted``: the same data with every value quoted, as Excel's "CSV UTF-8" or pandas'
QUOTE_ALL write it, some values holding commas, doubled quotes and line breaks (:func:`quoted`).
Run on a quiet machine; the numbers in the README come from this script.

``--shape files500`` splits the same rows once into ``--files`` files per dataset (an export
split per store or per hour; cached too) and times, in the same run, `ecompipe run` on the
split files too, and prints it against the run on one file per dataset. (The floor script
is not run on the split files: DuckDB's sniffer, on by its defaults, reads each file's start
first, which costs it more than the rows.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from measure import Measurement, measure, median, table

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SIZES = {"1M": 400_000, "10M": 4_000_000}  # orders -> ~2.5 items per order
# A text column per dataset that no contract reads (src/ecompipe/contracts.py): values with
# commas, doubled quotes and line breaks go there, so the KPIs stay those of the plain files.
NOTED = {"orders": "gender", "order_items": "status", "products": "name"}


def dataset(label: str) -> Path:
    """Generated landing folder for a size label (cached)."""
    from ecompipe.sample import generate_sample

    landing = OUT / f"data_{label}" / "landing"
    if not (landing / "orders").exists():
        shutil.rmtree(landing.parent, ignore_errors=True)
        summary = generate_sample(landing, SIZES[label], seed=1, name="bench")
        print(f"generated {label}: {summary.rows}", flush=True)
    return landing


def split(landing: Path, label: str, files: int) -> Path:
    """The landing folder ``landing`` with each dataset's rows split into ``files`` files of
    consecutive rows, every one with the header (cached). DuckDB reads every value as text
    and writes them back unchanged, one PARTITION_BY pass per dataset."""
    import duckdb

    target = OUT / f"data_{label}_files{files}" / "landing"
    if target.exists():
        return target
    work = target.parent / "work"
    shutil.rmtree(target.parent, ignore_errors=True)
    work.mkdir(parents=True)
    con = duckdb.connect()
    for source in sorted(landing.glob("*/*.csv")):
        dataset = source.parent.name
        read = f"read_csv('{source}', header = true, all_varchar = true, auto_detect = true)"
        con.execute(
            f"COPY (SELECT *, (row_number() OVER () - 1) * {files} // count(*) OVER () AS part "
            f"FROM {read}) TO '{work / dataset}' (FORMAT csv, HEADER, PARTITION_BY (part))"
        )
        (target / dataset).mkdir(parents=True)
        for part in (work / dataset).glob("part=*/*.csv"):
            number = int(part.parent.name.removeprefix("part="))
            part.rename(target / dataset / f"{source.stem}_{number:04d}.csv")
    shutil.rmtree(work)
    print(f"split {label} into {files} files per dataset", flush=True)
    return target


def quoted(landing: Path) -> Path:
    """The files of ``landing`` with every value quoted (cached next to it): one row in ten
    gets a note in its :data:`NOTED` column, ', "noted"' and a second line after an LF or
    (one in twenty) a CRLF. Written by DuckDB (FORCE_QUOTE *), empty values as ``""``."""
    import duckdb

    from ecompipe.contracts import DATASET_BY_NAME

    root = landing.parent.with_name(landing.parent.name + "_quoted")
    if root.exists():
        return root / "landing"
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for name, column in NOTED.items():
        (partial / "landing" / name).mkdir(parents=True)
        for src in (landing / name).glob("*.csv"):
            rel = f"read_csv('{src}', header = true, all_varchar = true, quote = '\"')"
            names = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
            key = f"CAST({DATASET_BY_NAME[name].key} AS BIGINT)"
            note = (
                f"CASE WHEN {key} % 10 = 0 THEN {column} || ', \"noted\"' || "
                f"CASE WHEN {key} % 20 = 0 THEN chr(13) ELSE '' END || chr(10) || 'second line' "
                f"ELSE {column} END"
            )
            values = ", ".join(f"coalesce({note if c == column else c}, '') AS {c}" for c in names)
            con.execute(
                f"COPY (SELECT {values} FROM {rel}) TO '{partial / 'landing' / name / src.name}' "
                "(FORMAT csv, HEADER true, FORCE_QUOTE *)"
            )
    partial.rename(root)
    print(f"wrote the quoted variant of {landing}", flush=True)
    return root / "landing"


def fresh_workspace(landing: Path, label: str) -> Path:
    """A new workspace whose landing holds hard links to the cached files."""
    ws = OUT / f"ws_{label}"
    shutil.rmtree(ws, ignore_errors=True)
    exe = str(Path(sys.executable).with_name("ecompipe"))
    subprocess.run([exe, "init", "--workspace", str(ws)], check=True, capture_output=True)
    for src in landing.rglob("*.csv"):
        dst = ws / "landing" / src.relative_to(landing)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(src, dst)
    # The files are whole; a link renews their ctime, and waiting out the settle period is
    # no work of the pipeline's, so the bench's runs take them at once.
    with (ws / "ecompipe.toml").open("a", encoding="utf-8") as config:
        config.write("\nsettle_seconds = 0\n")
    return ws


def run_on(landing: Path, name: str, label: str) -> Measurement:
    """`ecompipe run` on a fresh workspace holding the files of ``landing``."""
    exe = str(Path(sys.executable).with_name("ecompipe"))
    ws = fresh_workspace(landing, name)
    return measure(
        label, [exe, "run", "--workspace", str(ws), "--quiet"], log=OUT / f"run_{name}.log"
    )


def main() -> None:
    """Run the comparison for each requested size and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", default="1M,10M", help="sizes: 1M, 10M (comma-separated)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alternate the two sides this many times; "
        "the table shows each side's median run (the machine is shared and noisy)",
    )
    parser.add_argument(
        "--shape",
        choices=("plain", "quoted", "files500"),
        default="plain",
        help="plain: one file per dataset; quoted: every value quoted, some holding commas, "
        "doubled quotes, line breaks; files500: also the same rows in --files files each",
    )
    parser.add_argument("--files", type=int, default=500, help="files per dataset (files500)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    report = []
    for size_label in args.items.split(","):
        landing = dataset(size_label)
        label = size_label
        if args.shape == "quoted":
            landing, label = quoted(landing), f"{size_label}_quoted"
        size = sum(p.stat().st_size for p in landing.rglob("*.csv")) / 2**20
        split_landing = split(landing, label, args.files) if args.shape == "files500" else None
        floors, runs, split_runs = [], [], []
        for _ in range(args.repeat):
            floors.append(
                measure(
                    "bare DuckDB script (floor)",
                    [sys.executable, str(HERE / "floor_duckdb.py"), str(landing), "2GB"],
                    log=OUT / f"floor_{label}.log",
                )
            )
            runs.append(run_on(landing, label, "ecompipe run (DuckDB, whole pipeline)"))
            if split_landing is not None:
                split_runs.append(
                    run_on(
                        split_landing,
                        f"{label}_files{args.files}",
                        f"ecompipe run, {args.files} files per dataset",
                    )
                )
        floor, run = median(floors), median(runs)
        rows: list[Measurement] = [floor, run]
        if split_runs:
            rows.append(median(split_runs))
        shape = "" if args.shape == "plain" else f", {args.shape}"
        text = table(rows, floor, f"{size_label} order items ({size:,.0f} MiB of CSV{shape})")
        if split_runs:
            # The split layout's own cost: against the run on one file per dataset, as medians
            # and pairwise (runs next to each other share the machine's load).
            pairs = ", ".join(
                f"{b.seconds / a.seconds:.2f}" for a, b in zip(runs, split_runs, strict=True)
            )
            text += (
                f"\n\n{args.files} files per dataset against one: "
                f"{rows[2].seconds / run.seconds:.2f}x (medians; each repeat: {pairs})"
            )
        print(text, flush=True)
        report.append(text)
    (OUT / "pipeline_vs_floor.md").write_text("\n\n".join(report) + "\n")


if __name__ == "__main__":
    main()
