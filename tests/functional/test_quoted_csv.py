"""Fully quoted CSV through `ecompipe run`: every value quoted (Excel's "CSV UTF-8", pandas'
QUOTE_ALL), values holding commas, doubled quotes and LF or CRLF line breaks, in files ending
their lines with LF or with CRLF. Verdicts, rejects and KPIs are tests/reference.py's, and each
reject names the physical line its record starts on, counted here while writing the file.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests import reference
from tests.conftest import metrics_json
from tests.functional.test_pipeline_vs_reference import expected_json
from tests.functional.test_validation import _run_against_reference
from tests.support import DATASETS, clean_batch, only_execution, read_rejects, write_batch

pytestmark = [pytest.mark.duckdb, pytest.mark.local, pytest.mark.fast]

NOTES = ["", "plain", "a, b", 'say "hi"', "two\nlines", "two\r\nlines", '"x", and\nmore\r\n,']
# A bad value every 25th row of these datasets: (column, value, reason).
BAD = {
    "orders": ("user_id", "x1", "bad_int"),
    "order_items": ("sale_price", "1.2.3", "bad_decimal"),
}


def write_quoted(workspace: Path) -> dict[tuple[str, int, str, str], str]:
    """A generated batch rewritten with every value quoted and a notes column (orders and
    products end their lines with LF, order items with CRLF; a category in three holds a
    comma, doubled quotes and a line break). Returns each bad row's reject (file, physical
    line, column, reason) and the text rejects.csv gives it (lines joined by LF)."""
    from ecompipe.sample import generate_sample

    landing = workspace / "landing"
    generate_sample(landing, 120, seed=3, name="plain")
    expected = {}
    for dataset in DATASETS:
        (plain,) = (landing / dataset).glob("*.csv")
        header, *rows = list(csv.reader(io.StringIO(plain.read_text(), newline="")))
        plain.unlink()
        ending = "\r\n" if dataset == "order_items" else "\n"
        out = io.StringIO(newline="")
        writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator=ending)
        writer.writerow([*header, "notes"])
        for i, row in enumerate(rows):
            if dataset == "products" and i % 3 == 0:
                at = header.index("category")
                row[at] = f'{row[at]}, "special"\nedition'
            bad = dataset in BAD and i % 25 == 7
            if bad:
                column, value, reason = BAD[dataset]
                row[header.index(column)] = value
            line = out.getvalue().count("\n") + 1
            start = out.tell()
            writer.writerow([*row, NOTES[i % len(NOTES)]])
            if bad:
                text = out.getvalue()[start:].removesuffix(ending).replace("\r\n", "\n")
                expected[(f"{dataset}/quoted.csv", line, column, reason)] = text
        (landing / dataset / "quoted.csv").write_bytes(out.getvalue().encode())
    return expected


def test_a_fully_quoted_batch_matches_the_reference(workspace: Path, tmp_path: Path) -> None:
    expected = write_quoted(workspace)
    got, ref = _run_against_reference(workspace, tmp_path / "snapshot")
    assert got == set(expected)
    texts = {
        (r["file"], int(r["line"]), r["column"], r["reason"]): r["text"]
        for r in read_rejects(only_execution(workspace))
    }
    assert texts == expected
    assert any(line > 1 + int(text.split('"')[1]) for (_f, line, _c, _r), text in texts.items())
    orders, categories = reference.kpis(ref.orders, ref.items, ref.products)
    assert metrics_json(workspace) == expected_json(orders, categories)
    assert any("\n" in c["category"] for c in metrics_json(workspace)["category_metrics"])


ORDERS = "order_id,user_id,created_at,status,notes\n" + "".join(
    f'"{i}","{i}","2024-05-01 10:00:00","complete","{NOTES[i % 7].replace(chr(34), 2 * chr(34))}"\n'
    for i in range(1, 41)
)
# Records of the wrong width in a file whose records span lines (DuckDB reads such a file
# unpadded first, and must fall back to its padded reader to see these).
WRONG_WIDTH = {
    "short": '"41","41","2024-05-01 10:00:00","complete"\n',
    "long": '"41","41","2024-05-01 10:00:00","complete","a","b"\n',
    "trailing-comma": '"41","41","2024-05-01 10:00:00","complete","a",\n',
    "trailing-commas": '"41","41","2024-05-01 10:00:00","complete",,,\n',
    "blank": "   \n",
    "quoted-blank": '" "\n',
}


@pytest.mark.parametrize("extra", WRONG_WIDTH.values(), ids=WRONG_WIDTH.keys())
def test_rows_of_the_wrong_width_among_multiline_records(
    workspace: Path, tmp_path: Path, extra: str
) -> None:
    body = ORDERS + extra + '"42","42","2024-05-01 10:00:00","complete","x\ny"\n'
    write_batch(workspace, {**clean_batch({}), "orders": body})
    got, _ref = _run_against_reference(workspace, tmp_path / "snapshot")
    line = ORDERS.count("\n") + 1  # of the extra record
    blank = extra.strip(' "\n') == ""
    assert got == (set() if blank else {("orders/batch.csv", line, "", "bad_row_shape")})


def test_a_second_validation_in_one_session_sees_no_earlier_rejects(tmp_path: Path) -> None:
    """DuckDB appends to a rejects table of the same name: a file read again in the same
    session (a retried or resumed validation) must not inherit the rows of the earlier read."""
    from decimal import Decimal

    from ecompipe.config import Settings
    from ecompipe.engines.base import InputFile
    from ecompipe.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(Settings(), temp_dir=str(tmp_path / "tmp"))
    try:
        bad_rows = []
        for n, extra in enumerate([WRONG_WIDTH["long"], ""]):
            path = tmp_path / f"orders{n}.csv"
            path.write_text(ORDERS + extra)
            files = [InputFile("orders/batch.csv", "orders", path)]
            report = engine.validate(f"e{n}", files, tmp_path / f"staging{n}", Decimal("0.5"))
            bad_rows.append([f.bad_rows for f in report.files])
    finally:
        engine.close()
    assert bad_rows == [[1], [0]]
