"""The local object store: a folder (the workspace's landing/, archive/, quarantine/...) as
the bucket.

Every move is a *verified move*: on one filesystem a hard link then an unlink of the source
(the link proves the bytes are in place; a crash between the two leaves both names on one
inode, which the next call resolves); across filesystems a copy to a temporary name, a
size and SHA-256 check, a rename, and only then the delete. Nothing is overwritten.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from ecompipe import trigger
from ecompipe.config import Settings
from ecompipe.contracts import DATASET_NAMES
from ecompipe.engines.base import CuratedLog, curated_path, staged_path
from ecompipe.engines.current import (
    STATE_DIR,
    StateUpdate,
    commit_in_folder,
    withdraw_in_folder,
)
from ecompipe.errors import PermanentStoreError, StoreError, from_os_error
from ecompipe.faults import crash_point, fault_point
from ecompipe.stores.base import ManifestEntry, ObjectInfo
from ecompipe.workspace import Workspace

log = logging.getLogger("ecompipe")


def etag_of(st: os.stat_result) -> str:
    """A local object's version tag: its mtime and size."""
    return f"{st.st_mtime_ns}-{st.st_size}"


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: fcntl's F_SETLEASE (Linux only; Python names it from 3.9 on some builds, so by value).
_F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024) if sys.platform == "linux" else None


def held_for_writing(path: Path) -> bool:
    """Whether some process has the file open for writing now (an export still writing,
    an SFTP upload, ``cp`` in progress).

    Linux tells by a read lease, which it grants only when no one has the file open for
    writing; it is given back at once. Elsewhere, on file systems without leases (NFS) and
    for files of another owner the answer is False: the settle period is the defence then.
    """
    if _F_SETLEASE is None:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


def verified_move(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` without ever losing or overwriting data; idempotent."""
    src_exists, dst_exists = os.path.lexists(src), os.path.lexists(dst)
    if not src_exists:
        if dst_exists:
            return  # done by an earlier, interrupted call
        raise StoreError(f"cannot move {src}: it is gone")
    dst.parent.mkdir(parents=True, exist_ok=True)
    st = src.lstat()
    if dst_exists:
        if stat.S_ISREG(st.st_mode) and os.path.samefile(src, dst):
            os.unlink(src)  # a crash came between link and unlink
            return
        raise PermanentStoreError(
            f"refusing to overwrite {dst} (moving {src}): it holds other bytes; "
            "move it aside, then run again"
        )
    if not stat.S_ISREG(st.st_mode):
        # Symlinks and folders move as they are; never what a link points to.
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise from_os_error(exc, f"moving {src} to {dst}") from None
            shutil.move(str(src), str(dst))
        return
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise from_os_error(exc, f"moving {src} to {dst}") from None
        _copy_verified(src, dst)
    crash_point("move:after-copy-before-delete")
    os.unlink(src)


def _same_regular_file(a: Path, b: Path) -> bool:
    """Both names exist and are one regular file (one inode)."""
    try:
        sa, sb = a.lstat(), b.lstat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(sa.st_mode) and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _copy_verified(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with src.open("rb") as fin, tmp.open("wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
    except OSError:
        # A part copy on a full disk would only keep it full: the original is still there.
        tmp.unlink(missing_ok=True)
        raise
    if tmp.stat().st_size != src.stat().st_size or sha256_of(tmp) != sha256_of(src):
        tmp.unlink()
        raise StoreError(f"copy of {src} did not verify; the original is kept")
    os.link(tmp, dst)
    tmp.unlink()


class FolderObjectStore:
    """The workspace folders as the bucket."""

    def __init__(self, workspace: Workspace, settings: Settings) -> None:
        self.ws = workspace
        self.settings = settings
        self._warned: set[str] = set()

    def list_landing(self) -> list[ObjectInfo]:
        """Direct children of each dataset folder but hidden ones, with when each last changed:
        the later of its mtime and ctime (``cp -p`` and rsync set an old mtime; no tool can set
        ctime)."""
        found: list[ObjectInfo] = []
        for dataset in DATASET_NAMES:
            prefix = self.settings.prefix_of(dataset)
            folder = self.ws.landing / prefix
            try:
                entries = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise from_os_error(exc, f"listing {folder}") from None
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # hidden: never an object (ObjectStore.list_landing)
                if not trigger.is_utf8(entry.name):
                    # Not even quarantine can record it (trigger.is_utf8): it stays in
                    # landing, ignored with a warning, and the run goes on without it.
                    if not trigger.is_in_progress(entry.name) and entry.path not in self._warned:
                        self._warned.add(entry.path)  # once, though a run lists more than once
                        log.warning("ignoring %s: its name is not valid UTF-8", ascii(entry.path))
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # renamed or removed since the listing: not landed
                regular = stat.S_ISREG(st.st_mode)
                changed = max(st.st_mtime, st.st_ctime)
                found.append(
                    ObjectInfo(
                        f"{prefix}/{entry.name}",
                        st.st_size,
                        etag_of(st),
                        regular,
                        changed,
                        regular and held_for_writing(Path(entry.path)),
                        landed_at=changed,
                    )
                )
        return sorted(found, key=lambda o: o.key)

    def _inflight(self, execution_id: str, key: str) -> Path:
        return self.ws.inflight / execution_id / key

    def claim(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Move each object from landing into inflight/<execution>/ (finishing a crashed claim)."""
        for entry in entries:
            if entry.status != "claimed":
                continue
            src, dst = self.ws.landing / entry.key, self._inflight(execution_id, entry.key)
            if not os.path.lexists(dst):
                if not os.path.lexists(src):
                    entry.status = "gone"
                    continue
                verified_move(src, dst)
            elif _same_regular_file(src, dst):
                # Killed between link and unlink: the landing name is the claimed object
                # itself, not a new upload; left there it would be processed again.
                os.unlink(src)
            if entry.regular:
                # What we moved is what we own: if it was rewritten between listing and the
                # move, the manifest records the version actually taken.
                entry.etag = etag_of(dst.lstat())
                entry.size = dst.lstat().st_size
            entry.location = str(dst.relative_to(self.ws.root))

    def still_being_written(self, execution_id: str, entry: ManifestEntry) -> bool:
        """The file in inflight/ is not the version the claim recorded (size, mtime), or a
        writer holds it open: one that opened it in landing writes on after the move."""
        path = self._inflight(execution_id, entry.key)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and (etag_of(st) != entry.etag or held_for_writing(path))

    def unclaim(self, execution_id: str, entry: ManifestEntry) -> None:
        """Move the file from inflight/ back to landing/ (a writer holding it open writes
        on into the same file there)."""
        src, dst = self._inflight(execution_id, entry.key), self.ws.landing / entry.key
        if os.path.lexists(src) and os.path.lexists(dst) and not _same_regular_file(src, dst):
            # A new upload took the name meanwhile: both are kept, ours beside it.
            dst = self.ws.landing / trigger.returned_key(entry.key, execution_id)
        verified_move(src, dst)
        entry.status, entry.location = "returned", str(dst.relative_to(self.ws.root))

    def local_path(self, execution_id: str, entry: ManifestEntry) -> Path:
        """The claimed copy in inflight/."""
        return self._inflight(execution_id, entry.key)

    def archive(self, execution_id: str, entry: ManifestEntry) -> None:
        """Move to archive/<execution>/<key>."""
        self._settle(execution_id, entry, self.ws.archive, "archived")

    def quarantine(self, execution_id: str, entry: ManifestEntry) -> None:
        """Move to quarantine/<execution>/<key>."""
        self._settle(execution_id, entry, self.ws.quarantine, "quarantined")

    def _settle(self, execution_id: str, entry: ManifestEntry, area: Path, status: str) -> None:
        dst = area / execution_id / trigger.settled_key(entry.key)
        verified_move(self._inflight(execution_id, entry.key), dst)
        entry.status, entry.location = status, str(dst.relative_to(self.ws.root))

    def restore(self, source: str, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Verified copy of quarantine/<source>/<key> into inflight/<execution>/ (a replay)."""
        for entry in entries:
            src = self.ws.quarantine / source / trigger.settled_key(entry.key)
            dst = self._inflight(execution_id, entry.key)
            if not os.path.lexists(dst):
                if not src.is_file():
                    raise PermanentStoreError(
                        f"cannot replay {entry.key}: {src} is gone (or not a file)"
                    )
                dst.parent.mkdir(parents=True, exist_ok=True)
                _copy_verified(src, dst)
            st = dst.lstat()
            entry.etag, entry.size = etag_of(st), st.st_size
            entry.location = str(dst.relative_to(self.ws.root))

    def put_report(self, execution_id: str, name: str, source: Path) -> str:
        """Copy a report into quarantine/<execution>/ atomically."""
        dst = self.ws.quarantine / execution_id / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{name}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dst)
        return str(dst)

    def fetch_report(self, execution_id: str, name: str, target: Path) -> bool:
        """Copy quarantine/<execution>/<name> to ``target``; False when there is none. Both
        names are one path component each: a name from a URL never reaches another folder."""
        if not all(_one_component(part) for part in (execution_id, name)):
            return False
        source = self.ws.quarantine / execution_id / name
        part = target.with_name(f".{target.name}.part")
        try:
            shutil.copyfile(source, part)  # a full disk leaves no half report at target
        except OSError as exc:
            part.unlink(missing_ok=True)
            missing = FileNotFoundError | NotADirectoryError | IsADirectoryError
            if isinstance(exc, missing) and not source.is_file():
                return False  # no such report (or it went away meanwhile)
            raise
        part.replace(target)
        return True

    def staging_dir(self, execution_id: str) -> Path:
        """staging/<execution>/."""
        path = self.ws.staging / execution_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def save_staging(self, execution_id: str) -> None:
        """Nothing to do: staging is already on local disk."""

    def curated_log(self, uri: bool = False) -> CuratedLog:
        """curated/ (a cluster engine must see this folder at the same path)."""
        return CuratedLog.in_folder(self.ws.curated)

    def publish_batch(self, execution_id: str, seq: int) -> None:
        """Rename staged Parquet files into the curated log (a file already there is kept)."""
        staging = self.ws.staging / execution_id
        for dataset in DATASET_NAMES:
            src, dst = staged_path(staging, dataset), curated_path(self.ws.curated, dataset, seq)
            if src.exists():  # else: no rows for this dataset, or published before a crash
                fault_point("publish", dst)
                verified_move(src, dst)

    def withdraw_batch(self, execution_id: str, seq: int) -> None:
        """Delete the batch's files from curated/ (its rows' files are kept elsewhere), and
        the current state derived from it (current.withdraw_in_folder)."""
        for dataset in DATASET_NAMES:
            curated_path(self.ws.curated, dataset, seq).unlink(missing_ok=True)
        withdraw_in_folder(self.ws.curated / STATE_DIR, seq)

    def commit_state(self, update: StateUpdate) -> None:
        """Rename the new state files into curated/current/, then replace its manifest."""
        commit_in_folder(self.ws.curated / STATE_DIR, update)

    def cleanup(self, execution_id: str) -> None:
        """Remove the execution's staging data and its (now empty) inflight folders."""
        shutil.rmtree(self.ws.staging / execution_id, ignore_errors=True)
        inflight = self.ws.inflight / execution_id
        if inflight.exists():
            for folder in sorted(inflight.rglob("*"), reverse=True):
                if folder.is_dir() and not folder.is_symlink():
                    _rmdir_if_empty(folder)
            _rmdir_if_empty(inflight)


def _one_component(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name


def _rmdir_if_empty(folder: Path) -> None:
    # Not empty means something is still owned there: keep it.
    with contextlib.suppress(OSError):
        folder.rmdir()
