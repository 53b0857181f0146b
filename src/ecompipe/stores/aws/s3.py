"""S3 object store: landing bucket (BUCKET_NAME), archive bucket (S3_ARCHIVE_BUCKET).

Layout:
  s3://BUCKET_NAME/<orders|order_items|products>/...      landing (prefixes from *_PATH)
  s3://BUCKET_NAME/quarantine/<execution-id>/<key>        rejected files and reports
  s3://BUCKET_NAME/_ecompipe/staging/<execution-id>/      validated, typed rows (Parquet)
  s3://BUCKET_NAME/_ecompipe/replay/<execution-id>/<key>  a replay's copies of quarantined files
  s3://BUCKET_NAME/_ecompipe/curated/<dataset>/<seq>.parquet  the curated log
  s3://S3_ARCHIVE_BUCKET/archive/<execution-id>/<key>     processed files (the landing
                                                          bucket when S3_ARCHIVE_BUCKET is empty)

S3 has no rename, so a claim does not move anything: it records the object's ETag, and every
later read (GetObject IfMatch) and move (CopyObject CopySourceIfMatch) names that version. An
object overwritten mid-run is therefore never processed or archived under the old manifest:
the entry becomes ``gone`` and the new version waits in landing for the next run. A move is
copy, verify (size, ETag, checksum), then delete, and the delete too is conditional on the ETag.
Keys are used exactly as S3 lists them; URL-decoding happens only for S3 *event* keys
(aws/lambda_handler.py). A key that must not become a local path (trigger.key_problem: ``..``,
a backslash, a control character, too long) is never downloaded: validation quarantines the
object within S3, and every download here refuses such a name, or one that resolves outside
its folder. Copies of any size (multipart above a threshold, every part pinned to the
version) and what their verification compares: stores/aws/copies.py.

A replay (``restore``) makes a verified server-side copy of ``quarantine/<source>/<key>`` under
``_ecompipe/replay/<execution>/`` and the entry's location names it: from then on the copy is
the claimed object (read, archived, quarantined or given back to landing like a landing object,
by ETag), and the quarantined original is never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ecompipe import progress, trigger
from ecompipe.config import Settings
from ecompipe.contracts import DATASET_NAMES
from ecompipe.engines.base import CuratedLog, curated_path
from ecompipe.engines.current import (
    MANIFEST,
    STATE_DIR,
    CurrentState,
    StateUpdate,
    mirrored_names,
    usable,
)
from ecompipe.errors import PermanentStoreError, StoreError
from ecompipe.faults import crash_point
from ecompipe.stores.aws import copies
from ecompipe.stores.aws.clients import error_code, translate
from ecompipe.stores.base import ManifestEntry, ObjectInfo

WORK_PREFIX = "_ecompipe"
#: Codes of a copy or delete whose source is gone or no longer the version named.
GONE_CODES = ("PreconditionFailed", "412", "NoSuchKey", "404")


def _etag(raw: str) -> str:
    return raw.strip('"')


def _transfer_config() -> Any:
    """How upload_file and download_file stream: in bounded memory, whatever the size."""
    from boto3.s3.transfer import TransferConfig  # noqa: TID251 (lazy: the aws backend only)

    # Parts are read from / written to the file as they go: what is held is 8 requests in
    # flight plus at most 100 chunks of 256 KiB waiting for the disk. Measured at 200 and
    # 400 MiB (bench/s3_transfer_memory.py): about 25 MiB to upload, 45-60 MiB to
    # download, whatever the size. The "classic" manager, because the CRT one, chosen by
    # default on some instance types, sizes its buffers to the machine instead.
    return TransferConfig(
        multipart_threshold=64 * copies.MiB,
        multipart_chunksize=16 * copies.MiB,
        max_concurrency=8,
        max_io_queue=100,
        io_chunksize=256 * 1024,
        preferred_transfer_client="classic",
    )


class S3ObjectStore:
    """ObjectStore on S3; local copies for the engine live under ``root``."""

    #: Keys per ListObjectsV2 page (S3's maximum; tests lower it to cross pages cheaply).
    page_size = 1000
    #: When copies go multipart, in what parts (tests lower it to cross parts cheaply).
    copy_plan = copies.CopyPlan()

    def __init__(self, s3: Any, settings: Settings, root: Path) -> None:
        self.s3 = s3
        self.settings = settings
        self.bucket = settings.bucket_name
        self.archive_bucket = settings.archive_bucket or settings.bucket_name
        self.root = root

    # ------------------------------------------------------------------ listing

    def _objects(self, bucket: str, prefix: str, delimiter: str = "") -> Iterator[dict[str, Any]]:
        """Every object under ``prefix``, page by page (ListObjectsV2 returns 1000 at most)."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                **kwargs, PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                yield from page.get("Contents", [])
        except Exception as exc:
            raise translate(exc, f"listing s3://{bucket}/{prefix}") from None

    def landing_objects(self) -> list[dict[str, Any]]:
        """Raw listing entries directly under the dataset prefixes, hidden names skipped."""
        found = []
        for dataset in DATASET_NAMES:
            prefix = self.settings.prefix_of(dataset) + "/"
            for obj in self._objects(self.bucket, prefix, delimiter="/"):
                name = obj["Key"][len(prefix) :]
                if name and not name.startswith("."):
                    found.append(obj)
        return sorted(found, key=lambda o: str(o["Key"]))

    def list_landing(self) -> list[ObjectInfo]:
        """Objects directly under each dataset prefix (sub-prefixes are not objects)."""
        return [
            ObjectInfo(
                o["Key"],
                int(o["Size"]),
                _etag(o["ETag"]),
                landed_at=o["LastModified"].timestamp() if "LastModified" in o else None,
            )
            for o in self.landing_objects()
        ]

    # ------------------------------------------------------------------ claim and read

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """HeadObject with the object's checksum (copies.full_checksum), None if missing."""
        try:
            head: dict[str, Any] = self.s3.head_object(
                Bucket=bucket, Key=key, ChecksumMode="ENABLED"
            )
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise translate(exc, f"reading s3://{bucket}/{key}") from None
        return head

    def claim(self, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Record the version (ETag) each entry owns; idempotent.

        First claim: the version there now is taken (as the local store takes what it moves).
        Claim again after a crash: an entry whose object changed since is ``gone`` (the new
        version is a new upload, left for the next run).
        """
        for entry in entries:
            if entry.status != "claimed":
                continue
            key = self._claimed_key(execution_id, entry)
            head = self._head(self.bucket, key)
            if head is None:
                entry.status = "gone"
                continue
            etag, size = _etag(head["ETag"]), int(head["ContentLength"])
            if entry.location is not None and etag != entry.etag:
                entry.status, entry.location = "gone", None
                continue
            entry.etag, entry.size = etag, size
            entry.location = f"s3://{self.bucket}/{key}"

    def _replay_key(self, execution_id: str, key: str) -> str:
        """Where a replay keeps its copy of a quarantined file (``restore``)."""
        return f"{WORK_PREFIX}/replay/{execution_id}/{trigger.settled_key(key)}"

    def _claimed_key(self, execution_id: str, entry: ManifestEntry) -> str:
        """The key (in BUCKET_NAME) of the object holding the entry's claimed bytes: a
        replay's copy when the entry's location names it, else the landing object."""
        replayed = self._replay_key(execution_id, entry.key)
        return replayed if entry.location == f"s3://{self.bucket}/{replayed}" else entry.key

    def still_being_written(self, execution_id: str, entry: ManifestEntry) -> bool:
        """Never: S3 objects appear whole, and every read names the claimed version."""
        return False

    def unclaim(self, execution_id: str, entry: ManifestEntry) -> None:
        """Nothing moves on S3 (a claim only records the version): the object is in landing.

        A replay's copy is moved (verified) into landing, as the local store gives its copy
        back: under its key, or beside a newer upload of that key (trigger.returned_key).
        """
        if self._claimed_key(execution_id, entry) == entry.key:
            entry.status, entry.location = "returned", None
            return
        there = self._head(self.bucket, entry.key)
        key = entry.key
        if there is not None and _etag(there["ETag"]) != entry.etag:
            key = trigger.returned_key(entry.key, execution_id)
        self._settle(execution_id, entry, self.bucket, key, "returned")

    def local_path(self, execution_id: str, entry: ManifestEntry) -> Path:
        """Download exactly the claimed version (GetObject IfMatch) once per execution.

        Refuses (PermanentStoreError) a key that must not become a local path: the pipeline
        quarantines such objects unread, so reaching here with one is a bug to stop at.
        """
        path = self._local(self.root / execution_id / "inflight", entry.key)
        if path.is_file() and path.stat().st_size == entry.size:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not ".<name>.part": a name of 255 bytes (allowed) would make it too long to create.
        tmp = path.with_name(f".{hashlib.sha256(path.name.encode()).hexdigest()[:16]}.part")
        key = self._claimed_key(execution_id, entry)
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key, IfMatch=entry.etag)["Body"]
            step = f"download {entry.key}"
            with tmp.open("wb") as out:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    out.write(chunk)
                    progress.report(step, out.tell(), entry.size, "bytes")
        except Exception as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                # Overwritten after the claim: retrying the state re-claims and drops it.
                raise StoreError(
                    f"s3://{self.bucket}/{entry.key} changed after it was claimed"
                ) from None
            raise translate(exc, f"downloading s3://{self.bucket}/{entry.key}") from None
        tmp.replace(path)
        return path

    def _local(self, folder: Path, name: str) -> Path:
        """``folder / name``, or PermanentStoreError when ``name`` has a key problem or its
        path resolves outside ``folder`` (the check that holds whatever the rule misses)."""
        problem = trigger.key_problem(name)
        path = folder / name
        if problem is None and not path.resolve().is_relative_to(folder.resolve()):
            problem = f"its path leaves {folder}"
        if problem is not None:
            raise PermanentStoreError(
                f"refusing to copy {name!r} of s3://{self.bucket} under {folder}: {problem}"
            )
        return path

    # ------------------------------------------------------------------ moves

    def archive(self, execution_id: str, entry: ManifestEntry) -> None:
        """Verified move to s3://S3_ARCHIVE_BUCKET/archive/<execution>/<key>
        (trigger.settled_key)."""
        key = f"archive/{execution_id}/{trigger.settled_key(entry.key)}"
        self._settle(execution_id, entry, self.archive_bucket, key, "archived")

    def quarantine(self, execution_id: str, entry: ManifestEntry) -> None:
        """Verified move to s3://BUCKET_NAME/quarantine/<execution>/<key>
        (trigger.settled_key: an unsafe key gets a safe stand-in)."""
        key = f"quarantine/{execution_id}/{trigger.settled_key(entry.key)}"
        self._settle(execution_id, entry, self.bucket, key, "quarantined")

    def _settle(
        self, execution_id: str, entry: ManifestEntry, bucket: str, key: str, status: str
    ) -> None:
        """Copy (source version pinned), verify, then delete the source if still our version
        (the source: the claimed object, _claimed_key)."""
        where = f"s3://{bucket}/{key}"
        src = self._claimed_key(execution_id, entry)
        found = self._head(self.bucket, src)
        ours = found if found is not None and _etag(found["ETag"]) == entry.etag else None
        dst = self._head(bucket, key)
        if dst is not None:
            # Copied before a crash (the source may be deleted since): it must be our bytes.
            source = ours or {"ContentLength": entry.size, "ETag": entry.etag}
            expected = copies.reproducible_checksum(self.copy_plan, ours) if ours else None
            if not copies.verified(dst, source, expected):
                # Other bytes already there: no retry changes that; an operator must look.
                raise PermanentStoreError(
                    f"refusing to overwrite {where} (moving {entry.key}): it holds other "
                    "bytes; move it aside, then run again"
                )
        elif ours is None:
            # Gone or overwritten after the claim: the new version is not ours.
            entry.status, entry.location = "gone", None
            return
        else:
            try:
                copied = self._copy_checked(ours, src, bucket, key)
            except Exception as exc:
                if error_code(exc) in GONE_CODES:
                    # Overwritten or deleted since the HeadObject above (S3 refused the copy).
                    entry.status, entry.location = "gone", None
                    return
                raise translate(exc, f"copying {entry.key} to {where}") from None
            if not copied:
                now = self._head(self.bucket, src)
                if now is None or _etag(now["ETag"]) != entry.etag:
                    # The source changed during the copy. S3 refuses such a copy
                    # (CopySourceIfMatch on every request); this covers stores that ignore
                    # it: the new upload stays for the next run.
                    entry.status, entry.location = "gone", None
                    return
                raise StoreError(
                    f"copy of {entry.key} to {where} did not verify (size, ETag or checksum): "
                    "copy removed, original kept"
                )
        crash_point("move:after-copy-before-delete")
        try:
            # IfMatch: never delete a version uploaded after the claim.
            self.s3.delete_object(Bucket=self.bucket, Key=src, IfMatch=entry.etag)
        except Exception as exc:
            if error_code(exc) not in GONE_CODES:
                raise translate(exc, f"deleting s3://{self.bucket}/{src}") from None
        entry.status, entry.location = status, where

    def _copy_checked(
        self, source: dict[str, Any], src_key: str, bucket: str, key: str
    ) -> dict[str, Any] | None:
        """Copy the version of s3://BUCKET_NAME/``src_key`` that ``source`` (its HeadObject)
        describes to s3://``bucket``/``key`` and verify it (copies.verified): the copy's
        HeadObject, or None when it did not verify (then it is deleted). botocore's errors are
        raised as they are."""
        plan = self.copy_plan
        expected = copies.copy(self.s3, plan, source, (self.bucket, src_key), (bucket, key))
        dst = self._head(bucket, key)
        if dst is not None and copies.verified(dst, source, expected):
            return dst
        self.s3.delete_object(Bucket=bucket, Key=key)
        return None

    # ------------------------------------------------------------------ reports and data

    def restore(self, source: str, execution_id: str, entries: Sequence[ManifestEntry]) -> None:
        """Verified server-side copy of quarantine/<source>/<key> to the execution's replay
        key, which the entry then claims (the original stays); idempotent: a copy already
        there counts once it verifies against the original."""
        for entry in entries:
            src = f"quarantine/{source}/{trigger.settled_key(entry.key)}"
            dst = self._replay_key(execution_id, entry.key)
            original, copied = self._head(self.bucket, src), self._head(self.bucket, dst)
            if original is not None and copied is not None:
                expected = copies.reproducible_checksum(self.copy_plan, original)
                if not copies.verified(copied, original, expected):
                    copied = None  # not the original's bytes (fixed in place since): copy again
            if copied is None:
                if original is None:
                    raise PermanentStoreError(
                        f"cannot replay {entry.key}: s3://{self.bucket}/{src} is gone"
                    )
                try:
                    copied = self._copy_checked(original, src, self.bucket, dst)
                except Exception as exc:
                    raise translate(exc, f"copying s3://{self.bucket}/{src}") from None
                if copied is None:
                    raise StoreError(
                        f"copy of s3://{self.bucket}/{src} for a replay did not verify "
                        "(size, ETag or checksum): copy removed, original kept"
                    )
            entry.etag, entry.size = _etag(copied["ETag"]), int(copied["ContentLength"])
            entry.location = f"s3://{self.bucket}/{dst}"

    def put_report(self, execution_id: str, name: str, source: Path) -> str:
        """Upload a report to s3://BUCKET_NAME/quarantine/<execution>/<name>."""
        key = f"quarantine/{execution_id}/{name}"
        self._upload(source, key)
        return f"s3://{self.bucket}/{key}"

    def fetch_report(self, execution_id: str, name: str, target: Path) -> bool:
        """Download s3://BUCKET_NAME/quarantine/<execution>/<name> to ``target`` in bounded
        memory; False when there is none."""
        key = f"quarantine/{execution_id}/{name}"
        part = target.with_name(f".{target.name}.part")
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            # One request, streamed in 1 MiB reads. (GetObject, not HeadObject: a HEAD's 404
            # cannot tell a missing report from a missing bucket.)
            with contextlib.closing(body), part.open("wb") as out:
                shutil.copyfileobj(body, out, 1 << 20)
        except Exception as exc:
            part.unlink(missing_ok=True)
            if error_code(exc) == "NoSuchKey":
                return False
            raise translate(exc, f"reading s3://{self.bucket}/{key}") from None
        part.replace(target)
        return True

    def _upload(self, source: Path, key: str) -> None:
        step = progress.bytes_callback(f"upload {key}", source.stat().st_size)
        try:
            self.s3.upload_file(
                str(source), self.bucket, key, Config=_transfer_config(), Callback=step
            )
        except Exception as exc:
            raise translate(exc, f"uploading s3://{self.bucket}/{key}") from None

    def _download(self, key: str, path: Path, size: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        step = progress.bytes_callback(f"download {key}", size)
        try:
            self.s3.download_file(
                self.bucket, key, str(tmp), Config=_transfer_config(), Callback=step
            )
        except Exception as exc:
            raise translate(exc, f"downloading s3://{self.bucket}/{key}") from None
        tmp.replace(path)

    def _staging_prefix(self, execution_id: str) -> str:
        return f"{WORK_PREFIX}/staging/{execution_id}/"

    def staging_dir(self, execution_id: str) -> Path:
        """A local folder, filled from S3 when an earlier task already staged data."""
        path = self.root / execution_id / "staging"
        if not path.exists():
            path.mkdir(parents=True)
            prefix = self._staging_prefix(execution_id)
            for obj in self._objects(self.bucket, prefix):
                local = self._local(path, obj["Key"][len(prefix) :])
                self._download(obj["Key"], local, int(obj["Size"]))
        return path

    def save_staging(self, execution_id: str) -> None:
        """Upload the staged files: the transform task (another container) reads them.

        Staged objects of an earlier attempt that this one did not stage are deleted: a redo
        stages afresh (engines.base.fresh_staging), and publishing must not find them.
        """
        folder = self.root / execution_id / "staging"
        prefix = self._staging_prefix(execution_id)
        saved = {
            prefix + path.relative_to(folder).as_posix(): path
            for path in sorted(p for p in folder.rglob("*") if p.is_file())
        }
        for key, path in saved.items():
            self._upload(path, key)
        self._delete(
            [o["Key"] for o in self._objects(self.bucket, prefix) if o["Key"] not in saved]
        )

    def curated_log(self, uri: bool = False) -> CuratedLog:
        """With ``uri``: the log and its current state in place (``s3a://``, for Spark on a
        cluster), listed only, and no outbox. Else a local mirror of the current state's
        files and of the batches it lacks (every batch when there is no usable state); files
        never change, so only those not mirrored yet are downloaded."""
        prefix = f"{WORK_PREFIX}/curated/"
        objects = list(self._objects(self.bucket, prefix))
        names = [obj["Key"][len(prefix) :] for obj in objects]
        state = self._current_state()
        if uri:
            # No outbox: executors on other machines cannot write to this task's disk, so a
            # cluster engine reads the state (and folds what it lacks) but does not advance it.
            root = f"s3a://{self.bucket}/{prefix.rstrip('/')}"
            return CuratedLog.listed(root, names, state)
        path = self.root / "curated"
        path.mkdir(parents=True, exist_ok=True)
        log = CuratedLog.listed(str(path), names)
        state = usable(state, log.log_batches)
        wanted = mirrored_names(names, state)
        for obj, name in zip(objects, names, strict=True):
            local = self._local(path, name)
            if name in wanted and not (
                local.is_file() and local.stat().st_size == int(obj["Size"])
            ):
                self._download(obj["Key"], local, int(obj["Size"]))
        return CuratedLog.listed(str(path), names, state, str(self.root / "current_out"))

    def _current_state(self) -> CurrentState | None:
        """The committed current state (its manifest), if any."""
        key = f"{WORK_PREFIX}/curated/{STATE_DIR}/{MANIFEST}"
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise translate(exc, f"reading s3://{self.bucket}/{key}") from None
        return CurrentState.from_json(body.decode("utf-8"))

    def commit_state(self, update: StateUpdate) -> None:
        """Upload the new state files, then the manifest (S3 replaces an object whole), then
        delete the state objects it does not name."""
        base = f"{WORK_PREFIX}/curated/{STATE_DIR}/"
        for name in update.new_files:
            self._upload(update.outbox / name, base + name)
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=base + MANIFEST, Body=update.state.to_json().encode()
            )
        except Exception as exc:
            raise translate(exc, f"writing s3://{self.bucket}/{base}{MANIFEST}") from None
        keep = {base + n for n in update.state.all_files()} | {base + MANIFEST}
        self._delete([o["Key"] for o in self._objects(self.bucket, base) if o["Key"] not in keep])

    def publish_batch(self, execution_id: str, seq: int) -> None:
        """Server-side copy of the staged files into the curated log (a file there is kept)."""
        for dataset in DATASET_NAMES:
            src = f"{self._staging_prefix(execution_id)}{dataset}.parquet"
            dst = f"{WORK_PREFIX}/curated/" + curated_path(Path(), dataset, seq).as_posix()
            source = self._head(self.bucket, src)
            if source is None or self._head(self.bucket, dst) is not None:
                continue  # no rows for this dataset, or published before a crash
            try:
                copied = self._copy_checked(source, src, self.bucket, dst)
            except Exception as exc:
                raise translate(exc, f"publishing s3://{self.bucket}/{dst}") from None
            if not copied:
                raise StoreError(
                    f"publishing s3://{self.bucket}/{dst}: the copy did not verify "
                    "(size, ETag or checksum); removed, to be published again"
                )

    def withdraw_batch(self, execution_id: str, seq: int) -> None:
        """Delete the batch's objects from the curated log (a missing one is no error)."""
        for dataset in DATASET_NAMES:
            key = f"{WORK_PREFIX}/curated/" + curated_path(Path(), dataset, seq).as_posix()
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:
                raise translate(exc, f"withdrawing s3://{self.bucket}/{key}") from None
        state = self._current_state()
        if state is not None and seq in state.batches:
            # Derived data: the next run rebuilds it from the log. The manifest first, so a
            # kill halfway leaves no manifest naming a batch that is gone.
            base = f"{WORK_PREFIX}/curated/{STATE_DIR}/"
            self._delete([base + MANIFEST])
            self._delete([o["Key"] for o in self._objects(self.bucket, base)])

    def _delete(self, keys: list[str]) -> None:
        """Delete objects of the landing bucket (staged data, replaced state files), 1000 a
        request (S3's maximum)."""
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            try:
                self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
            except Exception as exc:
                raise translate(exc, "deleting staged data") from None

    def cleanup(self, execution_id: str) -> None:
        """Delete the execution's staged objects and its local working files."""
        self._delete(
            [o["Key"] for o in self._objects(self.bucket, self._staging_prefix(execution_id))]
        )
        shutil.rmtree(self.root / execution_id, ignore_errors=True)
