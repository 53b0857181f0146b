"""Where records start, and rejected rows mapped back to their lines (engines/records.py).

One rule for every engine: a line starts a record when the quotes before it balance. These
tests drive the DuckDB routine both engines map their rejects with, directly, with the row
numbering each engine's reader gives (Spark's line reader drops lines of only blanks), and
the Python probe header.py and framing.py use.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import pytest

from ecompipe.engines import records
from ecompipe.engines.records import Source

pytestmark = [pytest.mark.fast, pytest.mark.duckdb]

HEADER = b"id,name,price\n"


def _file(tmp_path: Path, body: bytes, header: bytes = HEADER) -> Path:
    path = tmp_path / "f.csv"
    path.write_bytes(header + body)
    return path


def _rejects(
    tmp_path: Path, source: Source, rows: list[int], column: str = "price"
) -> list[dict[str, str]]:
    """The rejects CSV for one file whose rejected rows are ``rows`` (records.write_rejects)."""
    con = duckdb.connect()
    values = ", ".join(f"(0, {row}, '{column}', 'bad_decimal')" for row in rows)
    con.execute(
        f"CREATE TABLE r AS SELECT * FROM (VALUES {values}) AS v(_file_idx, _row, "
        "column_name, reason)"
    )
    target = tmp_path / "rejects.csv"
    records.write_rejects(con, {"products": "r"}, {("products", 0): source}, target)
    text = target.read_text(encoding="utf-8")
    assert text.startswith("file,line,column,reason,text\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_positions_by_reading_mode(tmp_path: Path) -> None:
    """Empty lines are never rows; lines of only blanks are rows unless the reader drops them
    (Spark's line reader, Java's trim: a no-break space is no blank there)."""
    path = _file(tmp_path, b"1,a,2\n\n  \n\t\x0b\n2,b,3\n\xc2\xa0\n3,c,4\n")
    every = _rejects(tmp_path, Source("k.csv", path, 0, False), list(range(6)))
    dropping = _rejects(tmp_path, Source("k.csv", path, 0, True), list(range(4)))
    assert [int(r["line"]) for r in every] == [2, 4, 5, 6, 7, 8]
    assert [int(r["line"]) for r in dropping] == [2, 6, 7, 8]
    assert [r["text"] for r in dropping] == ["1,a,2", "2,b,3", "\xa0", "3,c,4"]


def test_unsplit_records_are_named_by_number_and_are_no_rows(tmp_path: Path) -> None:
    """A record the reader could not split is rejected as minus its record number (the header
    is record 1); positions of the rows after it skip it."""
    path = _file(tmp_path, b"1,a,2\n2,b,3,x,y\n3,c,4\n")
    found = _rejects(tmp_path, Source("k.csv", path, 0, False), [-3, 1])
    assert [(r["line"], r["text"]) for r in found] == [("3", "2,b,3,x,y"), ("4", "3,c,4")]


def test_multiline_records_keep_their_text_and_lines_before_are_added(tmp_path: Path) -> None:
    """A quoted line break keeps the record whole; CRLF ends go, a CR inside quotes stays
    (only line ends are trimmed), and the landed file's lines before the copy are added."""
    body = b'1,"two\r\nlines",2\r\n2,"say ""hi""\r\n\r\nthere",x\r\n3,c,4\r\n'
    path = _file(tmp_path, body, b"id,name,price\r\n")
    found = _rejects(tmp_path, Source("orders/a.csv", path, 3, False), [0, 1, 2])
    assert [(r["file"], int(r["line"])) for r in found] == [
        ("orders/a.csv", 5),
        ("orders/a.csv", 7),
        ("orders/a.csv", 10),
    ]
    assert [r["text"] for r in found] == [
        '1,"two\nlines",2',
        '2,"say ""hi""\n\nthere",x',
        "3,c,4",
    ]


def test_rejects_are_sorted_by_file_line_and_column(tmp_path: Path) -> None:
    """Two files of two datasets, several columns of one row, written in one sorted CSV."""
    a = _file(tmp_path, b"1,a,x\n2,b,y\n")
    b = tmp_path / "b.csv"
    b.write_bytes(b"order_id,user_id\n7,z\n")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE p AS SELECT * FROM (VALUES (0, 1, 'price', 'bad_decimal'), "
        "(0, 0, 'price', 'bad_decimal'), (0, 0, 'id', 'bad_int')) AS v(_file_idx, _row, "
        "column_name, reason)"
    )
    con.execute(
        "CREATE TABLE o AS SELECT * FROM (VALUES (0, 0, 'user_id', 'bad_int')) "
        "AS v(_file_idx, _row, column_name, reason)"
    )
    sources = {
        ("products", 0): Source("products/p.csv", a, 0, False),
        ("orders", 0): Source("orders/o.csv", b, 0, True),
    }
    target = tmp_path / "rejects.csv"
    records.write_rejects(con, {"products": "p", "orders": "o"}, sources, target)
    assert target.read_text(encoding="utf-8").splitlines() == [
        "file,line,column,reason,text",
        'orders/o.csv,2,user_id,bad_int,"7,z"',
        'products/p.csv,2,id,bad_int,"1,a,x"',
        'products/p.csv,2,price,bad_decimal,"1,a,x"',
        'products/p.csv,3,price,bad_decimal,"2,b,y"',
    ]


def test_count_records_leaves_out_blank_records(tmp_path: Path) -> None:
    """Rows of a file that misses a column: its non-blank records after the header, a record
    across lines once."""
    path = _file(tmp_path, b'\n1,a,2\n  \n""\n" "\n2,"b\nc",3\n\t\n3,c\n')
    assert records.count_records(path) == 3
    assert records.count_records(_file(tmp_path, b"")) == 0


@pytest.mark.parametrize(
    ("data", "spans"),
    [
        (b"a,b\n1,2\n", [(1, 4), (1, 4)]),
        (b'a,"b\nc"\r\n\n1,2', [(2, 9), (1, 1), (1, 3)]),
        (b'1,"""x""\n",2\n3', [(2, 13), (1, 1)]),
        (b'1,"open\n2,b\n', [(2, 12)]),
    ],
    ids=["plain", "quoted-line-break", "doubled-quotes", "unterminated"],
)
def test_record_spans(data: bytes, spans: list[tuple[int, int]]) -> None:
    """Lines and bytes of each record, as a probe of the first bytes reads them."""
    assert list(records.record_spans(io.BytesIO(data))) == spans
    assert sum(size for _, size in spans) == len(data)


def test_large_file_is_mapped_in_bounded_memory(tmp_path: Path) -> None:
    """A 50 MB file with three rejected rows is mapped under a 64 MB DuckDB memory limit (the
    whole file read as one text value ran out of memory): a record across the scan's 8 MiB
    chunk boundary, one whose quoted value spans a whole chunk, the last one without a line end."""
    good = b"12345,name,9.99\n"
    first = (8 << 20) - len(HEADER) - 18  # the first bad record's first line ends the chunk
    n1, n2, n3 = first // len(good), 1_000_000, 1_000_000
    assert len(HEADER) + n1 * len(good) + 18 == 8 << 20
    bad1 = b'7,"' + b"a" * 14 + b'\nb",x\n'
    bad2 = b'8,"' + b"q\n" * (5 << 20) + b'",x\n'
    path = _file(tmp_path, good * n1 + bad1 + good * n2 + b"\n" + bad2 + good * n3 + b"9,z,bad")
    con = duckdb.connect()
    con.execute("SET memory_limit = '64MB'")
    con.execute("SET threads = 1")
    rows = [n1, n1 + 1 + n2, n1 + 2 + n2 + n3]
    values = ", ".join(f"(0, {row}, 'price', 'bad_decimal')" for row in rows)
    con.execute(
        f"CREATE TABLE r AS SELECT * FROM (VALUES {values}) AS v(_file_idx, _row, "
        "column_name, reason)"
    )
    target = tmp_path / "rejects.csv"
    records.write_rejects(con, {"p": "r"}, {("p", 0): Source("p/a.csv", path, 0, False)}, target)
    limit = csv.field_size_limit(16 << 20)  # the 10 MiB quoted value
    try:
        with target.open(encoding="utf-8", newline="") as handle:
            found = [(int(r["line"]), r["text"]) for r in csv.DictReader(handle)]
    finally:
        csv.field_size_limit(limit)
    line2 = n1 + 2 + 2 + n2 + 1  # header, rows, bad1's two lines, the rows, an empty line
    assert found == [
        (n1 + 2, '7,"aaaaaaaaaaaaaa\nb",x'),
        (line2, '8,"' + "q\n" * (5 << 20) + '",x'),
        (line2 + (5 << 20) + 1 + n3, "9,z,bad"),
    ]
