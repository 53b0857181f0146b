"""Small helpers shared by the CLI, validation and workflow tests (no ecompipe imports here:
what they read back is read straight from the workspace's files)."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

DATASETS = ("orders", "order_items", "products")
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
