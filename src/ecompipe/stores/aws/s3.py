"""S3 object store: landing bucket (BUCKET_NAME), archive bucket (S3_ARCHIVE_BUCKET).

Layout:
  s3://BUCKET_NAME/<orders|order_items|products>/...      landing (prefixes from *_PATH)
  s3://BUCKET_NAME/quarantine/<execution-id>/<key>        rejected files and reports
  s3://BUCKET_NAME/_ecompipe/staging/<execution-id>/      validated, typed rows (Parquet)
  s3://BUCKET_NAME/_ecompipe/curated/<dataset>/<seq>.parquet  the curated log
  s3://S3_ARCHIVE_BUCKET/archive/<execution-id>/<key>     processed files (the landing
                                                          bucket when S3_ARCHIVE_BUCKET is empty)

S3 has no rename, so a claim does not move anything: it records the object's ETag, and every
later read (GetObject IfMatch) and move (CopyObject CopySourceIfMatch) names that version. An
object overwritten mid-run is therefore never processed or archived under the old manifest:
the entry becomes ``gone`` and the new version waits in landing for the next run. A move is
copy, verify (size and ETag), then delete, and the delete too is conditional on the ETag.
Keys are used exactly as S3 lists them; URL-decoding happens only for S3 *event* keys
(aws/lambda_handler.py). A key that must not become a local path (trigger.key_problem: ``..``,
a backslash, a control character, too long) is never downloaded: validation quarantines the
object within S3, and every download here refuses such a name, or one that resolves outside
its folder.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ecompipe import trigger
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
from ecompipe.stores.aws.clients import error_code, translate
from ecompipe.stores.base import ManifestEntry, ObjectInfo

WORK_PREFIX = "_ecompipe"


def _etag(raw: str) -> str:
    return raw.strip('"')


class S3ObjectStore:
    """ObjectStore on S3; local copies for the engine live under ``root``."""

    #: Keys per ListObjectsV2 page (S3's maximum; tests lower it to cross pages cheaply).
    page_size = 1000

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
            ObjectInfo(o["Key"], int(o["Size"]), _etag(o["ETag"])) for o in self.landing_objects()
        ]

    # ------------------------------------------------------------------ claim and read

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self.s3.head_object(Bucket=bucket, Key=key)
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
            head = self._head(self.bucket, entry.key)
            if head is None:
                entry.status = "gone"
                continue
            etag, size = _etag(head["ETag"]), int(head["ContentLength"])
            if entry.location is not None and etag != entry.etag:
                entry.status, entry.location = "gone", None
                continue
            entry.etag, entry.size = etag, size
            entry.location = f"s3://{self.bucket}/{entry.key}"

    def still_being_written(self, execution_id: str, entry: ManifestEntry) -> bool:
        """Never: S3 objects appear whole, and every read names the claimed version."""
        return False

    def unclaim(self, execution_id: str, entry: ManifestEntry) -> None:
        """Nothing moves on S3 (a claim only records the version): the object is in landing."""
        entry.status, entry.location = "returned", None

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
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=entry.key, IfMatch=entry.etag)["Body"]
            with tmp.open("wb") as out:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    out.write(chunk)
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
        self._settle(entry, self.archive_bucket, key, "archived")

    def quarantine(self, execution_id: str, entry: ManifestEntry) -> None:
        """Verified move to s3://BUCKET_NAME/quarantine/<execution>/<key>
        (trigger.settled_key: an unsafe key gets a safe stand-in)."""
        key = f"quarantine/{execution_id}/{trigger.settled_key(entry.key)}"
        self._settle(entry, self.bucket, key, "quarantined")

    def _settle(self, entry: ManifestEntry, bucket: str, key: str, status: str) -> None:
        """Copy (source version pinned), verify, then delete the source if still our version."""
        where = f"s3://{bucket}/{key}"
        dst = self._head(bucket, key)
        if dst is not None and not self._same(dst, entry):
            # Other bytes already there: no retry changes that; an operator must look.
            raise PermanentStoreError(
                f"refusing to overwrite {where} (moving {entry.key}): it holds other bytes; "
                "move it aside, then run again"
            )
        if dst is None:
            try:
                self.s3.copy_object(
                    Bucket=bucket,
                    Key=key,
                    CopySource={"Bucket": self.bucket, "Key": entry.key},
                    CopySourceIfMatch=entry.etag,
                )
            except Exception as exc:
                if error_code(exc) in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                    # Gone or overwritten after the claim: the new version is not ours.
                    entry.status, entry.location = "gone", None
                    return
                raise translate(exc, f"copying {entry.key} to {where}") from None
            dst = self._head(bucket, key)
            if dst is None or not self._same(dst, entry):
                src = self._head(self.bucket, entry.key)
                if src is None or _etag(src["ETag"]) != entry.etag:
                    # The source changed between claim and copy (S3 pins the version with
                    # CopySourceIfMatch; the check here also covers stores that ignore it):
                    # drop the copy we just made, leave the new upload for the next run.
                    self.s3.delete_object(Bucket=bucket, Key=key)
                    entry.status, entry.location = "gone", None
                    return
                raise StoreError(f"copy of {entry.key} to {where} did not verify; original kept")
        crash_point("move:after-copy-before-delete")
        try:
            # IfMatch: never delete a version uploaded after the claim.
            self.s3.delete_object(Bucket=self.bucket, Key=entry.key, IfMatch=entry.etag)
        except Exception as exc:
            if error_code(exc) not in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                raise translate(exc, f"deleting s3://{self.bucket}/{entry.key}") from None
        entry.status, entry.location = status, where

    @staticmethod
    def _same(head: dict[str, Any], entry: ManifestEntry) -> bool:
        # A single-part copy keeps the source's ETag (its MD5); a multipart source gets a new
        # one on copy, so its size is what we can compare.
        if int(head["ContentLength"]) != entry.size:
            return False
        return "-" in entry.etag or _etag(head["ETag"]) == entry.etag

    # ------------------------------------------------------------------ reports and data

    def put_report(self, execution_id: str, name: str, source: Path) -> str:
        """Upload a report to s3://BUCKET_NAME/quarantine/<execution>/<name>."""
        key = f"quarantine/{execution_id}/{name}"
        self._upload(source, key)
        return f"s3://{self.bucket}/{key}"

    def _upload(self, source: Path, key: str) -> None:
        try:
            self.s3.upload_file(str(source), self.bucket, key)
        except Exception as exc:
            raise translate(exc, f"uploading s3://{self.bucket}/{key}") from None

    def _download(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        try:
            self.s3.download_file(self.bucket, key, str(tmp))
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
                self._download(obj["Key"], self._local(path, obj["Key"][len(prefix) :]))
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
                self._download(obj["Key"], local)
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
            if self._head(self.bucket, dst) is not None or self._head(self.bucket, src) is None:
                continue  # published before a crash, or no rows for this dataset
            try:
                self.s3.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": src}
                )
            except Exception as exc:
                raise translate(exc, f"publishing s3://{self.bucket}/{dst}") from None

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
