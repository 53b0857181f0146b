"""CSV header rules shared by every engine: read the header record, find the contract columns.

Header names are trimmed and matched case-insensitively, in any order; extra columns are
ignored. The file-level verdicts (empty, unreadable, missing or doubled column) are decided
here once, so both engines give the same verdict and the same detail text.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

from ecompipe.contracts import Dataset, FileReason
from ecompipe.validation import FileReport

HEADER_PROBE_BYTES = 1 << 20


def read_header(path: Path) -> list[str] | None:
    """The header record of a CSV file (BOM removed), or None for an empty file."""
    with path.open("rb") as handle:
        head = handle.read(HEADER_PROBE_BYTES)
    if not head.strip():
        return None
    if b"\x00" in head:
        # NUL bytes: binary data or UTF-16, not a UTF-8 CSV.
        raise UnicodeError("the file holds NUL bytes (binary data or UTF-16?)")
    # A full probe may end inside a multi-byte character: only then are errors ignored.
    errors = "strict" if len(head) < HEADER_PROBE_BYTES else "ignore"
    record = next(csv.reader(io.StringIO(head.decode("utf-8-sig", errors), newline="")), None)
    return record or None


def locate_columns(
    ds: Dataset, path: Path, fr: FileReport, count_rows: Callable[[int], int]
) -> tuple[int, dict[str, int]] | None:
    """(header width, position of each contract column), or None with ``fr``'s verdict set.

    ``count_rows(header_width)`` is the engine's count of the file's non-blank records, asked
    only for a file that misses a column (its verdict still reports how many rows it held);
    it raises ValueError, with the reason, for a file it cannot read.
    """
    try:
        header = read_header(path)
    except (OSError, UnicodeError, csv.Error) as exc:
        text = str(exc).strip()
        fr.reason = FileReason.UNREADABLE
        fr.detail = "cannot read a CSV header: " + (
            text.splitlines()[0] if text else type(exc).__name__
        )
        return None
    if header is None:
        fr.reason, fr.detail = FileReason.NO_ROWS, "the file is empty"
        return None
    found: dict[str, list[int]] = {}
    for pos, name in enumerate(header):
        found.setdefault(name.strip().lower(), []).append(pos)
    missing = [c for c in ds.column_names if c not in found]
    if missing:
        try:
            rows = count_rows(len(header))
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
    return len(header), {c: found[c][0] for c in ds.column_names}
