"""Small helpers shared by the CLI, validation and workflow tests (no ecompipe imports here:
what they read back is read straight from the workspace's files)."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

DATASETS = ("orders", "order_items", "products")

#: The return code of a subprocess killed by SIGKILL (the kill-point tests).
SIGKILLED = -signal.SIGKILL
#: The seed's state names on the success path, in order (written out, not imported).
SUCCESS_PATH = [
    "AcquireLock",
    "ValidateFiles",
    "CheckValidationResult",
    "TransformData",
    "ArchiveFiles",
    "ReleaseLockAndNotifySuccess",
]


def land(workspace: Path, files: dict[str, Path], prefix: dict[str, str] | None = None) -> None:
    """Copy ``files`` (dataset -> source path) into the workspace's landing folders."""
    for dataset, src in files.items():
        folder = workspace / "landing" / (prefix or {}).get(dataset, dataset)
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, folder / src.name)


def write_batch(
    workspace: Path, contents: dict[str, str | bytes], name: str = "batch.csv"
) -> dict[str, Path]:
    """Write one file per dataset into landing; returns the landed paths."""
    landed = {}
    for dataset, content in contents.items():
        path = workspace / "landing" / dataset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
        landed[dataset] = path
    return landed


def clean_batch(extra: dict[str, list[str]], n: int = 200) -> dict[str, str]:
    """A clean batch of ``n`` rows per file plus ``extra`` raw lines (to test one rule each)."""
    orders = ["order_id,user_id,created_at,status"] + [
        f"{i},{i},2024-05-01 10:00:00,complete" for i in range(1, n + 1)
    ]
    items = ["id,order_id,product_id,sale_price"] + [f"{i},{i},1,{i}.50" for i in range(1, n + 1)]
    products = ["id,sku,cost,category,retail_price"] + [
        f"{i},SKU{i},1.00,Jeans,2.00" for i in range(1, n + 1)
    ]
    body = {"orders": orders, "order_items": items, "products": products}
    return {d: "\n".join(body[d] + extra.get(d, [])) + "\n" for d in DATASETS}


_FAR = 9_000_000_000_000_000_000
_ORDER = "7,2024-05-01 10:00:00,complete"
# Keys repeated among the dense 1..200 (counted with one bit per key) and far from them (a
# span too wide for bits: the hash aggregate finds them). Extra lines start at line 202.
DUPLICATE_CASES = {
    "near": (["5,5,2024-05-01 10:00:00,complete", f"6,{_ORDER}"], {("orders/batch.csv", 203)}),
    "far": (
        [
            f"{_FAR},{_ORDER}",
            f"{_FAR},{_ORDER}",
            f"{_FAR - 1},{_ORDER}",
            f"{_FAR - 1},8,2024-05-01 10:00:00,complete",
        ],
        {("orders/batch.csv", 205)},
    ),
    "far, none repeated": ([f"{_FAR},{_ORDER}", f"{_FAR - 1},{_ORDER}"], set()),
    "none repeated": ([], set()),
}


# Values a mutated file may carry: edge cases of every contract type and of CSV framing.
_ODD_VALUES = [
    *("", " ", "  7", "+5", "-0", "00012", "1e3", "\uff11\uff12", "NaN", "9223372036854775808"),
    *("12.", ".5", "1.2345678", "12345678901234.5", "0.0000005", "-1.50", "1,000", '"3"'),
    *('" 3 "', "\t4", "\u00a0", "2024-05-01T10:00", "2024-05-01 10:00:00Z", "2024-5-1 10:00:00"),
    *("2024-05-01T10:00:00+05:30", "2024-05-01 10:00:00 UTC", "2024-02-30 10:00:00", "Returned"),
    *("returned", " returned", "x" * 300, "\x0b", 'a"b', '"a,b"', '"line\nbreak"', "1\r", "NULL"),
]
_ODD_LINES = ["", " ", "\t", "  \t ", "\r", ",,,", "\x0c", '""', '" "']
_ODD_BYTES = ['"', '""', "\x01", "\u2028", "\x85", ";"]


def _reshaped(lines: list[str], rng: random.Random) -> list[str]:
    """The same table (``lines`` of plain comma-separated values, then "") with its columns
    in another order, and one more change: a header name in upper case and padded, an extra
    column, or a column dropped (a required one: the file lacks it)."""
    rows = [line.split(",") for line in lines[:-1]]
    order = list(range(len(rows[0])))
    rng.shuffle(order)
    rows = [[row[i] for i in order] for row in rows]
    kind = rng.randrange(3)
    if kind == 0:
        at = rng.randrange(len(rows[0]))
        rows[0][at] = f" {rows[0][at].upper()}\t"
    elif kind == 1:
        at = rng.randrange(len(rows[0]) + 1)
        for n, row in enumerate(rows):
            row.insert(at, "note" if n == 0 else rng.choice(["", "x", "a b"]))
    else:
        at = rng.randrange(len(rows[0]))
        rows = [row[:at] + row[at + 1 :] for row in rows]
    return [",".join(row) for row in rows] + [""]


def mutated_file(text: str, rng: random.Random) -> bytes:
    """``text`` (a CSV file) with a few random faults: maybe its columns reshaped, then odd
    values, too many or too few fields, blank and odd lines, stray CRs and quotes, repeated
    keys, maybe odd lines before the header, a BOM or CRLF ends."""
    lines = text.split("\n")
    if rng.random() < 0.2:
        lines = _reshaped(lines, rng)
    for _ in range(rng.randint(1, 6)):
        i = rng.randrange(1, len(lines) - 1)
        fields = lines[i].split(",")
        kind = rng.randrange(8)
        if kind in (0, 1, 2):
            fields[rng.randrange(len(fields))] = rng.choice(_ODD_VALUES)
            lines[i] = ",".join(fields)
        elif kind == 3:  # too many values (DuckDB's reader drops empty ones) or too few
            extra = rng.choice([[rng.choice(_ODD_VALUES)], [""], ["", '""'], None])
            lines[i] = ",".join(fields[:-1] if extra is None else [*fields, *extra])
        elif kind == 4:
            lines.insert(i, rng.choice(_ODD_LINES))
        elif kind == 5:
            lines.insert(i, lines[rng.randrange(1, len(lines) - 1)])  # a repeated key
        elif kind == 6:
            at = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:at] + rng.choice(_ODD_BYTES) + lines[i][at:]
        else:
            lines[i] += "\r" if rng.random() < 0.5 else ""
            lines[i] = " " + lines[i] if rng.random() < 0.5 else lines[i]
    if rng.random() < 0.1:  # odd lines before the header (blank ones are no rows)
        lines[0:0] = rng.choices(_ODD_LINES, k=rng.randint(1, 2))
    out = "\n".join(lines)
    if rng.random() < 0.1:
        out = "\ufeff" + out
    if rng.random() < 0.1:
        out = out.replace("\n", "\r\n")
    return out.encode("utf-8")


def mutated_batch(seed: int, rows: int = 30) -> dict[str, bytes]:
    """A small batch (seeded) where each file has faults from :func:`mutated_file`."""
    rng = random.Random(seed)
    statuses = ("complete", "returned", "shipped")
    orders = ["order_id,user_id,created_at,status"] + [
        f"{i},{rng.randint(1, 9)},2024-05-0{rng.randint(1, 3)} {rng.randint(10, 23)}:00:00,"
        f"{rng.choice(statuses)}"
        for i in range(1, rows + 1)
    ]
    items = ["id,order_id,product_id,sale_price"] + [
        f"{i},{rng.randint(1, rows + 2)},{rng.randint(1, 6)},{rng.randint(1, 999)}.{i % 100:02d}"
        for i in range(1, rows + 1)
    ]
    products = ["id,sku,cost,category,retail_price"] + [
        f"{i},SKU{i},1.00,{rng.choice(('Jeans', 'Tops'))},2.00" for i in range(1, 7)
    ]
    body = {"orders": orders, "order_items": items, "products": products}
    return {ds: mutated_file("\n".join(body[ds]) + "\n", rng) for ds in DATASETS}


def execution_dirs(workspace: Path, area: str) -> list[Path]:
    """Execution folders under archive/ or quarantine/, oldest first (ids sort by time)."""
    root = workspace / area
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def only_execution(workspace: Path, area: str = "quarantine") -> Path:
    """The one execution folder under ``area``."""
    dirs = execution_dirs(workspace, area)
    assert len(dirs) == 1, dirs
    return dirs[0]


def read_rejects(folder: Path) -> list[dict[str, str]]:
    """rejects.csv of an execution's quarantine folder, as dicts."""
    path = folder / "rejects.csv"
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_report(folder: Path) -> dict[str, Any]:
    """validation_report.json of an execution's quarantine folder."""
    data: dict[str, Any] = json.loads((folder / "validation_report.json").read_text("utf-8"))
    return data


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def physical_lines(path: Path) -> list[str]:
    """The file's physical lines (BOM and CR removed), 1-based via ``[n - 1]``."""
    text = path.read_bytes().decode("utf-8-sig")
    return [line.removesuffix("\r") for line in text.split("\n")]


def notifications(workspace: Path) -> list[dict[str, Any]]:
    """Every notification written to notifications.jsonl."""
    path = workspace / "notifications.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]


def as_metrics_json(kpis: dict[str, Any]) -> dict[str, Any]:
    """KPIs in the shape of a fixture's expected.json (money and rates as strings, category
    rows by category) as `ecompipe metrics --json` prints them: JSON numbers, category rows
    by date then category."""

    def row(r: dict[str, Any]) -> dict[str, Any]:
        return {
            k: float(Decimal(v))
            if k not in ("category", "order_date") and isinstance(v, str)
            else v
            for k, v in r.items()
        }

    return {
        "order_metrics": [
            row(r) for r in sorted(kpis["order_metrics"], key=lambda r: r["order_date"])
        ],
        "category_metrics": [
            row(r)
            for r in sorted(
                kpis["category_metrics"], key=lambda r: (r["order_date"], r["category"])
            )
        ],
    }
