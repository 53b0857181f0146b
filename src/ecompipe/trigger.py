"""Complete-set detection, shared by ``ecompipe run``/``watch`` and the Lambda aggregator,
and the rule for object keys that are safe to use as a local path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import PurePosixPath

from ecompipe.config import Settings
from ecompipe.contracts import DATASET_NAMES

#: The longest landing key, in bytes of UTF-8: S3's own limit (1,024) less the longest prefix
#: an object gets when it is archived or quarantined ("quarantine/<execution>/", execution
#: names being at most 80 characters), so that it keeps its name there.
MAX_KEY_BYTES = 1024 - len("quarantine/") - 80 - 1
#: The longest file name most file systems take (NAME_MAX), in bytes.
MAX_SEGMENT_BYTES = 255


#: Endings writers give a file while they write it (then rename it into place).
WRITER_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


def is_in_progress(key: str) -> bool:
    """A name writers use while writing: hidden (``.x.csv``, rsync's temporary names), an
    office lock file (``~$x.csv``), or a partial download (``x.csv.part``, ...). Such an
    entry is never a candidate, neither data nor an entry to quarantine."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith((".", "~")) or name.lower().endswith(WRITER_SUFFIXES)


def is_csv_key(key: str) -> bool:
    """A data file: ``.csv`` in any case, not a name writers use while writing."""
    return key.lower().endswith(".csv") and not is_in_progress(key)


def missing_datasets(keys: Iterable[str], settings: Settings) -> list[str]:
    """Datasets that have no CSV among ``keys`` (empty list: the set is complete)."""
    present = {settings.dataset_of_key(k) for k in keys if is_csv_key(k)}
    return [d for d in DATASET_NAMES if d not in present]


def _is_control(char: str) -> bool:
    """C0 (NUL included), DEL and C1: characters no file name or terminal should carry."""
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def is_utf8(name: str) -> bool:
    """False for a name holding bytes that are not UTF-8 (a local file name; Python keeps
    those bytes as lone surrogates). No manifest, report or S3 key can hold such a name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def settled_key(key: str) -> str:
    """The name an object keeps under ``archive/<execution>/`` or ``quarantine/<execution>/``:
    its key, or for a key that is no safe name (key_problem) ``unsafe/<SHA-256 of the key>``,
    which any tool can copy to a disk (the validation report names the original key)."""
    if key_problem(key) is None:
        return key
    return "unsafe/" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def returned_key(key: str, execution_id: str) -> str:
    """The name a claimed file is given back to landing under when a newer upload took its
    key meanwhile: beside it, ``<stem>.returned-<execution><suffix>`` (a later run takes both,
    the newer one first: it sorts before this name)."""
    path = PurePosixPath(key)
    return str(path.with_name(f"{path.stem}.returned-{execution_id}{path.suffix}"))


def key_problem(key: str) -> str | None:
    """Why ``key`` must not become a local path (one line for a person), or None if it may.

    S3 takes almost any key; a task turns a landing key into ``<scratch>/<key>``. A key that
    could leave that folder (``..``, a leading ``/``), be read differently by another tool
    (a backslash, an empty or ``.`` segment), carry a control character (NUL truncates C
    strings, ESC drives terminals), or not fit (S3's 1,024 bytes once archived, MAX_KEY_BYTES;
    a file system's 255 per segment) is refused by this one rule, on S3 and for local landing
    names alike.
    """
    for position, char in enumerate(key):
        if _is_control(char):
            return f"a control character (U+{ord(char):04X}) at position {position}"
    if not is_utf8(key):
        return "not valid UTF-8"
    size = len(key.encode("utf-8"))
    if size > MAX_KEY_BYTES:
        return f"{size:,} bytes long, more than {MAX_KEY_BYTES:,}"
    if "\\" in key:
        return "a backslash (a path separator on Windows)"
    if key.startswith("/"):
        return "a leading '/' (an absolute path)"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return f"a path segment {segment!r} (empty, '.' and '..' are not names)"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return (
                f"a path segment of {len(segment.encode('utf-8')):,} bytes, "
                f"more than {MAX_SEGMENT_BYTES}"
            )
    return None
