"""CSV header rules shared by every engine: read the header record, find the contract columns.

Header names are trimmed and matched case-insensitively, in any order; extra columns are
ignored. The header is the first non-blank record: blank lines before it are no rows. The
file-level verdicts (empty, unreadable, missing or doubled column) are decided here once, so
both engines give the same verdict and the same detail text.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecompipe.contracts import Dataset, FileReason
from ecompipe.engines.records import record_spans
from ecompipe.validation import FileReport, is_blank_record

HEADER_PROBE_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Header:
    """A file's header record, and the blank records before it (no rows: a header is the
    first non-blank record, :func:`validation.is_blank_record`) as physical lines and bytes."""

    names: list[str]
    lines_before: int
    bytes_before: int


@dataclass(frozen=True)
class Located:
    """Where a file's contract columns are, and the file an engine reads for its rows.

    ``path`` is the file itself when its header is its first line (almost always); else a
    copy without the blank lines before the header: DuckDB would take the first of them for
    the header, and Spark skips only some (not a quoted-blank one, none in multiLine mode).
    A row's physical line in the original file is its line in ``path`` plus ``lines_before``.
    """

    width: int
    positions: dict[str, int]
    path: Path
    lines_before: int


def read_header(path: Path) -> Header | None:
    """The header record of a CSV file (BOM removed), or None for a file of blank lines."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_PROBE_BYTES)
    if b"\x00" in head:
        # NUL bytes: binary data or UTF-16, not a UTF-8 CSV.
        raise UnicodeError("the file holds NUL bytes (binary data or UTF-16?)")
    # A full probe may end inside a multi-byte character: only then are errors ignored.
    errors = "strict" if len(head) < HEADER_PROBE_BYTES else "ignore"
    start = len(_BOM) if head.startswith(_BOM) else 0
    lines = 0
    probe = io.BytesIO(head)
    probe.seek(start)
    for span, size in record_spans(probe):
        end = start + size
        text = head[start:end].decode("utf-8", errors).removesuffix("\n").removesuffix("\r")
        if not is_blank_record(text):
            tail = head[start:].decode("utf-8", errors)
            record = next(csv.reader(io.StringIO(tail, newline="")), None)
            return Header(record, lines, start) if record else None
        lines += span
        start = end
    if len(head) == HEADER_PROBE_BYTES:
        raise csv.Error(f"no header in the first {HEADER_PROBE_BYTES >> 20} MiB, only blank lines")
    return None


def locate_columns(
    ds: Dataset,
    path: Path,
    fr: FileReport,
    scratch: Path,
    count_rows: Callable[[Path, int, int], int],
) -> Located | None:
    """Where the contract columns are, or None with ``fr``'s verdict set.

    ``scratch`` is a folder of the engine's for a copy of a file with blank lines before its
    header (see :class:`Located`). ``count_rows(path, header_width, lines_before)`` is the
    engine's count of the non-blank records of ``path`` (header first, ``lines_before`` it
    left out), asked only for a file that misses a column (its verdict still reports how many
    rows it held); it raises ValueError, with the reason, for a file it cannot read.
    An OSError is never a verdict: it propagates.
    """
    try:
        header = read_header(path)
    # Not OSError: a failed read (too many open files, an I/O error) is the machine, not the
    # data; it goes up to the pipeline, which classes it and keeps the file for the next run.
    except (UnicodeError, csv.Error) as exc:
        text = str(exc).strip()
        fr.reason = FileReason.UNREADABLE
        fr.detail = "cannot read a CSV header: " + (
            text.splitlines()[0] if text else type(exc).__name__
        )
        return None
    if header is None:
        fr.reason, fr.detail = FileReason.NO_ROWS, "the file is empty"
        return None
    source = path
    if header.lines_before:
        handle, name = tempfile.mkstemp(prefix=f"{ds.name}-", suffix=".csv", dir=scratch)
        source = Path(name)
        with path.open("rb") as original, open(handle, "wb") as copy:
            original.seek(header.bytes_before)
            shutil.copyfileobj(original, copy, 8 << 20)
    found: dict[str, list[int]] = {}
    for pos, name in enumerate(header.names):
        found.setdefault(name.strip().lower(), []).append(pos)
    missing = [c for c in ds.column_names if c not in found]
    if missing:
        try:
            rows = count_rows(source, len(header.names), header.lines_before)
        except ValueError as exc:  # unreadable comes first, as in the reference
            fr.reason, fr.detail = FileReason.UNREADABLE, str(exc)
            return None
        fr.reason = FileReason.MISSING_COLUMN
        fr.detail = "required column missing: " + ", ".join(missing)
        fr.rows = rows
        return None
    doubled = [c for c in ds.column_names if len(found[c]) > 1]
    if doubled:
        fr.reason = FileReason.UNREADABLE
        fr.detail = "column given more than once: " + ", ".join(doubled)
        return None
    positions = {c: found[c][0] for c in ds.column_names}
    return Located(len(header.names), positions, source, header.lines_before)
