"""Validation through `ecompipe run`, against hand-worked expectations and the reference.

What is compared is what a user reads: quarantine/<execution>/rejects.csv and
validation_report.json. Expected values come from tests/fixtures/hand_dirty (worked out by hand,
see its README), from the fixture files' own bytes, or from tests/reference.py.
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ecompipe.engines.header import HEADER_PROBE_BYTES
from tests import reference
from tests.conftest import FIXTURES, ecompipe, metrics_json
from tests.functional.test_pipeline_vs_reference import expected_json
from tests.support import (
    DATASETS,
    DUPLICATE_CASES,
    clean_batch,
    execution_dirs,
    land,
    mutated_batch,
    only_execution,
    physical_lines,
    read_rejects,
    read_report,
    write_batch,
)

pytestmark = [pytest.mark.duckdb, pytest.mark.local]

HAND = FIXTURES / "hand_dirty"
FILE_CASES = ["missing_column", "no_rows", "empty", "error_rate", "unreadable"]


def _run(workspace: Path, expect: int = 0) -> Path:
    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == expect, result.output
    assert "Traceback" not in result.output
    return only_execution(workspace)


def _land_hand(workspace: Path, replace: str | None = None) -> None:
    files = {d: HAND / f"{d}.csv" for d in DATASETS}
    if replace is not None:
        for path in (HAND / replace).glob("*.csv"):
            files[path.stem] = path
    land(workspace, files)


def _by_file(report: dict) -> dict[str, dict]:
    return {f["key"].split("/")[-1]: f for f in report["files"]}


@pytest.mark.fast
def test_hand_dirty_rejects_match_the_hand_worked_list(workspace: Path) -> None:
    _land_hand(workspace)
    folder = _run(workspace)
    rows = read_rejects(folder)
    expected = json.loads((HAND / "expected_rejects.json").read_text())
    got = [
        {
            "file": r["file"].split("/")[-1],
            "line": int(r["line"]),
            "column": r["column"],
            "reason": r["reason"],
        }
        for r in rows
    ]
    key = lambda r: (r["file"], r["line"], r["column"], r["reason"])  # noqa: E731
    assert sorted(got, key=key) == sorted(expected, key=key)
    # file is the original key under landing/
    assert {r["file"] for r in rows} == {
        "orders/orders.csv",
        "order_items/order_items.csv",
        "products/products.csv",
    }


@pytest.mark.fast
def test_hand_dirty_reject_text_is_the_original_physical_line(workspace: Path) -> None:
    _land_hand(workspace)
    rows = read_rejects(_run(workspace))
    assert rows
    for r in rows:
        lines = physical_lines(HAND / r["file"].split("/")[-1])
        assert r["text"] == lines[int(r["line"]) - 1], r
    # Spot-check two by hand: the padded blank status row and the 6-field row.
    texts = {(r["file"], r["line"]): r["text"] for r in rows}
    assert texts[("orders/orders.csv", "7")] == "   ,2005,,12x,2024-13-01 10:00:00"
    assert texts[("order_items/order_items.csv", "10")] == "8,12.00,1,2007,too,many"


@pytest.mark.fast
def test_hand_dirty_verdicts_counts_and_duplicates(workspace: Path) -> None:
    _land_hand(workspace)
    report = read_report(_run(workspace))
    expected = json.loads((HAND / "expected_verdicts.json").read_text())["batch"]
    files = _by_file(report)
    for v in expected["verdicts"]:
        got = files[v["file"]]
        assert (got["dataset"], got["accepted"], got["reason"], got["rows"], got["bad_rows"]) == (
            v["dataset"],
            v["accepted"],
            v["reason"],
            v["rows"],
            v["bad_rows"],
        )
    assert report["duplicates_dropped"] == expected["duplicates_dropped"]
    assert report["accepted_rows"] == expected["kept"]
    # Rows with at least one reject, per file (README: orders 7 and 13; items 7, 10, 11; ...).
    assert {k: f["rejected_rows"] for k, f in files.items()} == {
        "orders.csv": 2,
        "order_items.csv": 3,
        "products.csv": 1,
    }
    assert {k: f["duplicates_dropped"] for k, f in files.items()} == {
        "orders.csv": 1,
        "order_items.csv": 1,
        "products.csv": 1,
    }
    assert report["rejected_rows"] == 6
    assert (report["files_accepted"], report["files_rejected"]) == (3, 0)
    # README line 15: `On Hold` is the one status outside the known list (a warning only).
    assert {k: f["unknown_status"] for k, f in files.items()} == {
        "orders.csv": 1,
        "order_items.csv": 0,
        "products.csv": 0,
    }


@pytest.mark.fast
@pytest.mark.parametrize("case", FILE_CASES)
def test_each_file_reason_quarantines_the_whole_file(workspace: Path, case: str) -> None:
    _land_hand(workspace, replace=case)
    folder = _run(workspace)
    expected = next(
        v
        for v in json.loads((HAND / "expected_verdicts.json").read_text())["file_reasons"]
        if v["file"].startswith(case + "/")
    )
    name = expected["file"].split("/")[-1]
    got = _by_file(read_report(folder))[name]
    assert (got["accepted"], got["reason"], got["rows"], got["bad_rows"]) == (
        False,
        expected["reason"],
        expected["rows"],
        expected["bad_rows"],
    )
    assert got["detail"]  # says why, for the operator
    key = f"{expected['dataset']}/{name}"
    # The whole file is in quarantine, byte for byte, and nothing of it in rejects.csv.
    assert (folder / key).read_bytes() == (HAND / expected["file"]).read_bytes()
    assert not any(r["file"] == key for r in read_rejects(folder))
    assert not (workspace / "landing" / key).exists()
    # The other two files were accepted and archived.
    archive = only_execution(workspace, "archive")
    others = [d for d in DATASETS if d != expected["dataset"]]
    assert sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*.csv")) == sorted(
        f"{d}/{d}.csv" for d in others
    )


# One line each; what the reference says about them is the expectation.
EDGE_LINES = {
    "orders": [
        "1001,\t7\t,2024-05-01 10:00:00,complete",  # tab padding: trimmed
        "1002,\u00a07,2024-05-01 10:00:00,complete",  # NBSP padding: trimmed (str.strip)
        "1003,7,\t2024-05-01 10:00:00\u3000,complete",  # ideographic space
        "1004,7,2024-05-01 10:00:00,\tShipped ",  # status trimmed and lowercased
        "1005,\x0b7\x0c,2024-05-01 10:00:00,complete",  # VT and FF
        "1006,7,0000-01-01 00:00:00,complete",  # year 0: bad_timestamp
        "1007,7,0001-01-01 00:30:00+01:00,complete",  # UTC lands in year 0
        "1008,7,9999-12-31 23:30:00-01:00,complete",  # UTC lands in year 10000
        "1009,7,2024-05-01 10:00:00 +02:00,complete",  # space before offset
        "1010,7,2024-05-01,complete",  # bare date
        "+0000000000000000001011,7,2024-05-01 10:00:00,complete",  # leading zeros
        "9223372036854775808,7,2024-05-01 10:00:00,complete",  # > int64
    ],
    "order_items": [
        "1001,1,1,0000000000000.5",  # 13 digits before the point, but the value fits
        "1002,1,1,999999999999.9999996",  # rounds to 10**12: does not fit
        "1003,1,1,999999999999.9999994",  # rounds down: fits
        "1004,1,1,-0.0000004",  # rounds to 0: not negative
        "1005,1,1,\u00a05.5\t",
        "1006,1,1,1e3",
    ],
}


def _run_against_reference(
    workspace: Path, snapshot: Path
) -> tuple[set[tuple[str, int, str, str]], reference.BatchResult]:
    """Copy landing to ``snapshot``, run the reference on the copy and the pipeline on
    landing, and assert they agree on the exit code, rejects, verdicts, duplicates and
    accepted rows. Returns the rejects and the reference's result."""
    shutil.copytree(workspace / "landing", snapshot)
    ref = reference.validate_batch({d: sorted((snapshot / d).glob("*.csv")) for d in DATASETS})
    before = execution_dirs(workspace, "quarantine")
    result = ecompipe("run", "--quiet", workspace=workspace)
    assert result.exit_code == (0 if any(v.accepted for v in ref.verdicts) else 1), result.output
    assert "Traceback" not in result.output
    (folder,) = [d for d in execution_dirs(workspace, "quarantine") if d not in before]
    got = {(r["file"], int(r["line"]), r["column"], r["reason"]) for r in read_rejects(folder)}
    assert got == {
        (Path(r.file).relative_to(snapshot).as_posix(), r.line, r.column, r.reason)
        for r in ref.rejects
    }
    report = read_report(folder)
    assert {
        f["key"]: (f["accepted"], f["reason"], f["rows"], f["bad_rows"]) for f in report["files"]
    } == {
        Path(v.file).relative_to(snapshot).as_posix(): (v.accepted, v.reason, v.rows, v.bad_rows)
        for v in ref.verdicts
    }
    # The report counts only datasets with an accepted file.
    used = {v.dataset for v in ref.verdicts if v.accepted}
    assert report["duplicates_dropped"] == {
        d: n for d, n in ref.duplicates_dropped.items() if d in used
    }
    accepted = {"orders": ref.orders, "order_items": ref.items, "products": ref.products}
    assert report["accepted_rows"] == {d: len(rows) for d, rows in accepted.items() if d in used}
    return got, ref


@pytest.mark.fast
def test_edge_values_match_the_reference(workspace: Path, tmp_path: Path) -> None:
    write_batch(workspace, clean_batch(EDGE_LINES))
    got, _ref = _run_against_reference(workspace, tmp_path / "snapshot")
    # The hand view of the same lines (header + 200 rows: the extra ones start at line 202).
    assert {(f, line) for f, line, _c, _r in got} == {
        ("orders/batch.csv", 207),  # year 0
        ("orders/batch.csv", 208),  # year 0 after the offset
        ("orders/batch.csv", 209),  # year 10000 after the offset
        ("orders/batch.csv", 210),  # space before the offset
        ("orders/batch.csv", 211),  # bare date
        ("orders/batch.csv", 213),  # beyond int64
        ("order_items/batch.csv", 203),  # does not fit after rounding
        ("order_items/batch.csv", 207),  # exponent
    }


@pytest.mark.fast
@pytest.mark.parametrize("case", DUPLICATE_CASES)
def test_repeated_keys_are_found_near_and_far(workspace: Path, tmp_path: Path, case: str) -> None:
    lines, conflicts = DUPLICATE_CASES[case]
    write_batch(workspace, clean_batch({"orders": lines}))
    got, _ref = _run_against_reference(workspace, tmp_path / "snapshot")
    assert got == {(f, line, "order_id", "conflicting_duplicate") for f, line in conflicts}
    report = read_report(only_execution(workspace))
    assert report["duplicates_dropped"]["orders"] == (0 if "none" in case else 1)


@pytest.mark.fast
def test_trimmed_values_reach_the_kpis(workspace: Path) -> None:
    """A tab-padded category is the same category; an NBSP-padded price is that price."""
    write_batch(
        workspace,
        {
            "orders": "order_id,user_id,created_at,status\n1,1,2024-05-01 10:00:00, Returned\t\n",
            "order_items": "id,order_id,product_id,sale_price\n1,1,1,\u00a010.005\n2,1,2,1\n",
            "products": "id,sku,cost,category,retail_price\n1,A,1,\tJeans\u3000,2\n2,B,1,Jeans,2\n",
        },
    )
    _run(workspace)
    data = json.loads(ecompipe("metrics", "--json", workspace=workspace).stdout)
    # 10.005 + 1 = 11.005 -> 11.01 half-up; the one order is returned.
    assert data["order_metrics"] == [
        {
            "order_date": "2024-05-01",
            "total_orders": 1,
            "total_revenue": 11.01,
            "total_items_sold": 2,
            "return_rate": 1.0,
            "unique_customers": 1,
        }
    ]
    assert data["category_metrics"] == [
        {
            "category": "Jeans",
            "order_date": "2024-05-01",
            "daily_revenue": 11.01,
            "avg_order_value": 11.01,
            "avg_return_rate": 1.0,
        }
    ]


BROKEN_LINES = {
    # id: (line 202 of a clean orders file, the start of the verdict's detail)
    "unterminated-quote": ('61,1,2024-05-01 10:00:00,"complete', "broken CSV quoting"),
    "text-after-quote": ('61,1,2024-05-01 10:00:00,"complete"x', "broken CSV quoting"),
    "nul": (
        "61,1,2024-05-01 10:00:00,compl\x00ete",
        "cannot read a CSV header: the file holds NUL",
    ),
    "quote-in-value": ('61,1,2024-05-01 10:00:00,compl"ete', "a quote inside an unquoted value"),
    "space-before-quote": ('61,1,2024-05-01 10:00:00, "complete"', "a quote inside an unquoted"),
    "cr-inside-value": ("61,1,2024-05-01\r10:00:00,complete", "a carriage return (CR) that"),
    "crlf-in-lf-file": ("61,1,2024-05-01 10:00:00,complete\r", "lines end with both LF and CRLF"),
}


@pytest.mark.fast
@pytest.mark.parametrize("case", BROKEN_LINES.values(), ids=BROKEN_LINES.keys())
def test_broken_csv_is_an_unreadable_file(workspace: Path, case: tuple[str, str]) -> None:
    """Where rows start is unknowable after broken quoting or line ends: the reference and
    the pipeline both quarantine the whole file as unreadable, saying why and where."""
    bad_line, detail = case
    landed = write_batch(workspace, clean_batch({"orders": [bad_line]}))
    snapshot = {ds: path.read_bytes() for ds, path in landed.items()}
    ref = reference.validate_batch({ds: [path] for ds, path in landed.items()})
    assert [(v.accepted, v.reason) for v in ref.verdicts if v.dataset == "orders"] == [
        (False, "unreadable")
    ]
    folder = _run(workspace)
    files = {f["key"]: f for f in read_report(folder)["files"]}
    verdicts = {key: (f["accepted"], f["reason"]) for key, f in files.items()}
    assert verdicts == {
        "orders/batch.csv": (False, "unreadable"),
        "order_items/batch.csv": (True, None),
        "products/batch.csv": (True, None),
    }
    assert files["orders/batch.csv"]["detail"].startswith(detail)
    if "NUL" not in detail:  # found by the header probe, which names no line
        assert "(near line 202)" in files["orders/batch.csv"]["detail"]
    assert (folder / "orders" / "batch.csv").read_bytes() == snapshot["orders"]


NOT_UTF8_HEADERS = {
    # id: (header, a good row's values but the last one)
    "in-an-unused-column": ("order_id,user_id,created_at,status,note", "2024-05-01 10:00:00,x,"),
    "in-a-file-missing-a-column": ("order_id,user_id,created_at,note", "2024-05-01 10:00:00,"),
}


@pytest.mark.fast
@pytest.mark.parametrize("case", NOT_UTF8_HEADERS.values(), ids=NOT_UTF8_HEADERS.keys())
def test_bytes_not_utf8_past_the_first_mib_make_the_file_unreadable(
    workspace: Path, case: tuple[str, str]
) -> None:
    """Past the header probe's first MiB, in a column the contract does not use (DuckDB's
    reader checks only the columns it reads) or in a file that also lacks a column
    (unreadable comes first): the reference and the pipeline both quarantine the file as
    unreadable, naming the line."""
    header, middle = case
    rows = 40_000  # 1.3-1.6 MB
    orders = (
        f"{header}\n".encode()
        + "".join(f"{i},{i},{middle}x\n" for i in range(1, rows + 1)).encode()
        + f"{rows + 1},1,{middle}caf".encode()
        + b"\xe9\n"  # Latin-1, not UTF-8
    )
    assert len(orders) > HEADER_PROBE_BYTES
    landed = write_batch(workspace, {**clean_batch({}), "orders": orders})
    ref = reference.validate_batch({ds: [path] for ds, path in landed.items()})
    assert [v.reason for v in ref.verdicts if v.dataset == "orders"] == ["unreadable"]
    folder = _run(workspace)
    files = {f["key"]: f for f in read_report(folder)["files"]}
    assert files["orders/batch.csv"]["reason"] == "unreadable"
    assert files["orders/batch.csv"]["detail"] == (
        f"the file is not valid UTF-8 text (near line {rows + 2})"
    )
    assert (folder / "orders" / "batch.csv").read_bytes() == orders


@pytest.mark.fast
def test_blank_lines_are_not_rows_and_multiline_rows_keep_their_text(workspace: Path) -> None:
    orders = (
        "order_id,user_id,created_at,status,notes\n"
        + "".join(f"{i},{i},2024-05-01 10:00:00,complete,\n" for i in range(1, 51))
        + "   \n\t\n\u00a0\n"  # lines 52-54: whitespace only (spaces, tab, NBSP), no rows
        + '51,x1,2024-05-01 10:00:00,complete,"two\nlines"\n'  # lines 55-56, bad user_id
        + "52,1,2024-05-01 10:00:00,,\n"  # line 57, missing status
    )
    landed = write_batch(workspace, {**clean_batch({}), "orders": orders})
    snapshot = physical_lines(landed["orders"])
    folder = _run(workspace)
    got = {(r["line"], r["column"], r["reason"], r["text"]) for r in read_rejects(folder)}
    assert got == {
        ("55", "user_id", "bad_int", '51,x1,2024-05-01 10:00:00,complete,"two\nlines"'),
        ("57", "status", "missing_value", "52,1,2024-05-01 10:00:00,,"),
    }
    assert snapshot[54] + "\n" + snapshot[55] == '51,x1,2024-05-01 10:00:00,complete,"two\nlines"'
    verdicts = {f["key"]: f for f in read_report(folder)["files"]}
    verdict = verdicts["orders/batch.csv"]
    # 52 rows (the whitespace-only lines are none), 2 bad: 3.8 % -> accepted.
    assert (verdict["rows"], verdict["bad_rows"], verdict["accepted"]) == (52, 2, True)


# Blank records before the header: (bytes before it, its physical line).
LEADING_BLANKS = {
    "empty-line": (b"\n", 2),
    "whitespace-lines": (b"  \n\t\n\x0c\n", 4),
    "quoted-blanks": (b'""\n" "\n', 3),
    "quoted-line-break": (b'"\n"\n', 3),
    "bom-then-empty-line": (b"\xef\xbb\xbf\n\n", 3),
}


@pytest.mark.fast
@pytest.mark.parametrize("case", LEADING_BLANKS.values(), ids=LEADING_BLANKS.keys())
def test_blank_lines_before_the_header_are_no_rows(
    workspace: Path, tmp_path: Path, case: tuple[bytes, int]
) -> None:
    """The header is the first non-blank record: rows keep their physical line, a file that
    misses a column still counts its rows, and the original bytes go to quarantine."""
    prefix, header_line = case
    orders = (
        "order_id,user_id,created_at,status\n"
        + "".join(f"{i},{i},2024-05-01 10:00:00,complete\n" for i in range(1, 40))
        + "40,x,2024-05-01 10:00:00,complete\n"  # header + 40: bad user_id
    )
    items = "id,order_id,sale_price\n1,1,1.00\n\n2,1,2.00\n"  # no product_id
    quarantined = prefix + items.encode()
    write_batch(
        workspace,
        {**clean_batch({}), "orders": prefix + orders.encode(), "order_items": quarantined},
    )
    got, _ref = _run_against_reference(workspace, tmp_path / "snapshot")
    assert got == {("orders/batch.csv", header_line + 40, "user_id", "bad_int")}
    folder = only_execution(workspace)
    files = {f["key"]: f for f in read_report(folder)["files"]}
    assert (files["orders/batch.csv"]["rows"], files["orders/batch.csv"]["accepted"]) == (40, True)
    items_verdict = files["order_items/batch.csv"]
    assert (items_verdict["reason"], items_verdict["rows"]) == ("missing_column", 2)
    assert (folder / "order_items" / "batch.csv").read_bytes() == quarantined


@pytest.mark.fast
def test_exactly_the_error_rate_is_accepted(workspace: Path) -> None:
    # 20 rows, 1 bad = 5 %: not more than 5 %, accepted.
    lines = ["order_id,user_id,created_at,status"] + [
        f"{i},{i},2024-05-01 10:00:00,complete" for i in range(1, 20)
    ]
    write_batch(workspace, {**clean_batch({}), "orders": "\n".join([*lines, "20,x,,"]) + "\n"})
    files = {f["key"]: f for f in read_report(_run(workspace))["files"]}
    verdict = files["orders/batch.csv"]
    assert (verdict["accepted"], verdict["rows"], verdict["bad_rows"]) == (True, 20, 1)


@pytest.mark.fast
def test_max_error_rate_setting_changes_the_verdict(workspace: Path) -> None:
    lines = ["order_id,user_id,created_at,status"] + [
        f"{i},{i},2024-05-01 10:00:00,complete" for i in range(1, 10)
    ]
    write_batch(workspace, {**clean_batch({}), "orders": "\n".join([*lines, "10,x,,"]) + "\n"})
    result = ecompipe("run", "-q", workspace=workspace, ECOMPIPE_MAX_ERROR_RATE="0.1")
    assert result.exit_code == 0, result.output
    files = {f["key"]: f for f in read_report(only_execution(workspace))["files"]}
    assert (files["orders/batch.csv"]["accepted"], files["orders/batch.csv"]["bad_rows"]) == (
        True,
        1,
    )
    assert read_report(only_execution(workspace))["max_error_rate"] == str(Decimal("0.1"))


@pytest.mark.slow
def test_generated_dirty_rejects_equal_the_reference(workspace: Path, tmp_path: Path) -> None:
    result = ecompipe(
        "generate", "--orders", "2500", "--seed", "11", "--dirty", workspace=workspace
    )
    assert result.exit_code == 0, result.output
    got, _ref = _run_against_reference(workspace, tmp_path / "snapshot")
    assert len(got) > 10  # the dirty data really has faults
    # Every row-level fault kind of the generator shows up.
    assert {reason for *_k, reason in got} >= {
        "bad_int",
        "missing_value",
        "negative",
        "conflicting_duplicate",
    }


@pytest.mark.fast
def test_a_required_column_named_twice_rejects_the_file(workspace: Path) -> None:
    """Deliberately stricter than the reference (which takes the first occurrence): with two
    'status' columns nobody can say which one is meant, so the file is quarantined whole."""
    orders = (
        "order_id,status,user_id,created_at,STATUS\n1,complete,1,2024-05-01 10:00:00,returned\n"
    )
    write_batch(workspace, {**clean_batch({}), "orders": orders})
    folder = _run(workspace)
    verdict = next(f for f in read_report(folder)["files"] if f["key"] == "orders/batch.csv")
    assert (verdict["accepted"], verdict["reason"]) == (False, "unreadable")
    assert "status" in verdict["detail"] and "more than once" in verdict["detail"]


# Each run: two batches, each of five mutated files per dataset.
MUTATED_RUNS = range(12)


def _mutated_files(run: int, batch: int) -> dict[str, dict[str, bytes]]:
    """Dataset -> file name -> content for one batch of :data:`MUTATED_RUNS`."""
    files: dict[str, dict[str, bytes]] = {d: {} for d in DATASETS}
    for seed in range(run * 10 + batch * 5, run * 10 + batch * 5 + 5):
        for dataset, content in mutated_batch(seed).items():
            files[dataset][f"m{seed:03d}.csv"] = content
    return files


@pytest.mark.slow
@pytest.mark.parametrize("run", MUTATED_RUNS)
def test_randomly_mutated_batches_match_the_reference(
    workspace: Path, tmp_path: Path, run: int
) -> None:
    """A seeded differential test against the reference: files with random faults (columns
    reordered, renamed in another case, added or missing; stray quotes and CRs, mixed line
    ends, odd values, rows too wide or too narrow, blank and quoted-blank lines, repeated keys
    across files). After each batch the verdicts, rejects,
    duplicates and accepted rows are the reference's, and the metrics are its KPIs over the
    batches so far."""
    state = None
    for batch in range(2):
        for dataset, files in _mutated_files(run, batch).items():
            for name, content in files.items():
                path = workspace / "landing" / dataset / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
        _got, ref = _run_against_reference(workspace, tmp_path / f"snapshot{batch}")
        state = reference.merge(state, ref)
        orders, categories = reference.kpis(state.orders, state.items, state.products)
        assert metrics_json(workspace) == expected_json(orders, categories), f"batch {batch}"


@pytest.mark.fast
def test_mutated_batches_reach_every_verdict(tmp_path: Path) -> None:
    """The differential test above sees every file verdict the faults can give, and rows
    of the wrong width (its comparisons would pass vacuously otherwise)."""
    verdicts, reasons = set(), set()
    for run in MUTATED_RUNS:
        for batch in range(2):
            paths: dict[str, list[Path]] = {}
            for dataset, files in _mutated_files(run, batch).items():
                for name, content in files.items():
                    path = tmp_path / f"{run}_{batch}" / dataset / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
                    paths.setdefault(dataset, []).append(path)
            ref = reference.validate_batch(paths)
            verdicts |= {v.reason for v in ref.verdicts}
            reasons |= {r.reason for r in ref.rejects}
    assert verdicts == {None, "unreadable", "error_rate", "missing_column"}
    assert {
        "bad_row_shape",
        "conflicting_duplicate",
        "bad_int",
        "bad_decimal",
        "bad_timestamp",
        "missing_value",
    } <= reasons


def _chunk(dataset: str, first: int, rows: int) -> list[str]:
    """A clean file's lines (header first): ``rows`` rows with keys from ``first`` on."""
    keys = range(first, first + rows)
    if dataset == "orders":
        status = ("complete", "returned")
        return ["order_id,user_id,created_at,status"] + [
            f"{k},{k % 7},2024-05-0{k % 3 + 1} {k % 14 + 10}:00:00,{status[k % 2]}" for k in keys
        ]
    if dataset == "order_items":
        return ["id,order_id,product_id,sale_price"] + [f"{k},{k},{k % 5},{k}.25" for k in keys]
    return ["id,sku,cost,category,retail_price"] + [
        f"{k},SKU{k},1.00,{('Jeans', 'Tops')[k % 2]},2.00" for k in keys
    ]


def _many_files() -> dict[str, dict[str, bytes]]:
    """Dataset -> file name -> content: 50 files per dataset, as an export split by store
    would land, and among them every kind of file a split export can hold. Clean chunks
    with disjoint keys, some with bad values (kept under the error rate, or not), in
    another column order, with blank lines before the header, a BOM, CRLF ends or a quoted
    line break; a header alone, an empty file, a missing column, a record too wide; and
    mutated files
    (tests/support.mutated_batch, keys repeated across them)."""
    files: dict[str, dict[str, bytes]] = {d: {} for d in DATASETS}
    for n in range(30):
        for dataset in DATASETS:
            lines = _chunk(dataset, 1000 + 20 * n, 20)
            if n % 5 == 1:  # a bad value: rejected row, file accepted
                lines[3] = lines[3].replace(",", ",x", 1)
            if n == 7:  # too many bad values: file rejected
                lines[1:] = [line.replace(",", ",-", 1) for line in lines[1:]]
            if n == 8:  # columns in another order
                lines = [",".join(reversed(line.split(","))) for line in lines]
            if n == 13:  # a record over two lines: a file DuckDB reads with one thread
                head, last = lines[2].rsplit(",", 1)
                lines[2] = f'{head},"{last}\n"'
            text = "\n".join(lines) + "\n"
            if n == 9:
                text = "\n \n" + text
            if n == 11:
                text = "\ufeff" + text.replace("\n", "\r\n")
            files[dataset][f"chunk{n:02d}.csv"] = text.encode()
    for dataset in DATASETS:
        header = _chunk(dataset, 0, 0)[0]
        files[dataset]["empty.csv"] = b""
        files[dataset]["header_only.csv"] = (header + "\n").encode()
        files[dataset]["missing.csv"] = b"id,x\n1,2\n"
        # Its one record is too wide to split into values: a row of the wrong shape only.
        files[dataset]["too_wide.csv"] = f"{header}\n{'1,' * 8}1\n".encode()
    for seed in range(100, 116):
        for dataset, content in mutated_batch(seed).items():
            files[dataset][f"m{seed:03d}.csv"] = content
    return files


@pytest.mark.fast
def test_many_files_each_get_their_verdict_and_the_kpis(workspace: Path, tmp_path: Path) -> None:
    """Fifty files per dataset in one batch (DuckDB reads those of one header layout
    together): each file's verdict, the rejected rows with their lines, the duplicates,
    the accepted rows and the KPIs are the reference's, as for files read one by one."""
    many = _many_files()
    assert {len(f) for f in many.values()} == {50}
    for dataset, files in many.items():
        for name, content in files.items():
            (workspace / "landing" / dataset / name).write_bytes(content)
    got, ref = _run_against_reference(workspace, tmp_path / "snapshot")
    reasons = {v.reason for v in ref.verdicts}
    assert reasons >= {None, "error_rate", "no_rows", "missing_column"}, reasons
    assert sum(v.accepted for v in ref.verdicts) > 90
    assert {line for f, line, _c, _r in got if f.endswith("chunk01.csv")} == {4}
    orders, categories = reference.kpis(ref.orders, ref.items, ref.products)
    assert metrics_json(workspace) == expected_json(orders, categories)


@pytest.mark.fast
def test_files_read_alone_when_duckdb_fails_on_them_together(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When DuckDB fails on a read of several files at once, each is read by itself and
    gets the verdict it would alone: the reference's, as are the rejects and the KPIs."""
    import duckdb

    from ecompipe.engines.duckdb import DuckDBEngine

    read_checked = DuckDBEngine._read_checked
    refused: list[int] = []

    def failing_together(
        engine: DuckDBEngine, table: str, group: list[Any], **how: bool | None
    ) -> None:
        if len(group) > 1:
            refused.append(len(group))
            raise duckdb.InvalidInputException("Invalid Input Error: refused (test)")
        read_checked(engine, table, group, **how)

    monkeypatch.setattr(DuckDBEngine, "_read_checked", failing_together)
    for dataset, files in _mutated_files(0, 0).items():
        for name, content in files.items():
            (workspace / "landing" / dataset / name).write_bytes(content)
    _got, ref = _run_against_reference(workspace, tmp_path / "snapshot")
    assert refused, "no read of several files was tried"
    orders, categories = reference.kpis(ref.orders, ref.items, ref.products)
    assert metrics_json(workspace) == expected_json(orders, categories)
