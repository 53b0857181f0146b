"""The ObjectStore contract (stores/base.py), on every adapter: landing, claims, verified
moves, reports, staged data and the curated log."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.contract.conftest import Adapter

EID, OTHER = "exec-contract-1", "exec-contract-2"
#: One CSV per dataset, each of another size (a local version tag is mtime and size).
LANDED = {
    "orders/a.csv": b"order_id,user_id,created_at,status\n1,1,2024-03-01 10:00:00,complete\n",
    "order_items/b.csv": b"id,order_id,product_id,sale_price\n1,1,1,9.99\n",
    "products/c.csv": b"id,sku,cost,category,retail_price\n1,S1,1.00,Jeans,2.00\n2,S2,1,T,2\n",
}


def landed(adapter: Adapter) -> Any:
    """A store with LANDED in landing."""
    for key, data in LANDED.items():
        adapter.land(key, data)
    return adapter.ports().store()


def manifest(adapter: Adapter, store: Any) -> list[Any]:
    """Manifest entries for what is listed, as the runner records them."""
    from ecompipe.stores.base import ManifestEntry

    return [
        ManifestEntry(o.key, adapter.settings.dataset_of_key(o.key), o.size, o.etag, o.regular)
        for o in store.list_landing()
    ]


def claimed(adapter: Adapter) -> tuple[Any, list[Any]]:
    """A store with LANDED claimed by EID, and the manifest entries."""
    store = landed(adapter)
    entries = manifest(adapter, store)
    store.claim(EID, entries)
    return store, entries


def listed(store: Any) -> dict[str, int]:
    """Regular landed objects: key -> size."""
    return {o.key: o.size for o in store.list_landing() if o.regular}


def test_list_landing_gives_direct_children_with_key_size_and_version(adapter: Adapter) -> None:
    store = landed(adapter)
    adapter.land("orders/.hidden.csv", b"hidden")
    adapter.land("orders/sub/nested.csv", b"nested")
    adapter.land("elsewhere/d.csv", b"not under a dataset prefix")
    objects = store.list_landing()
    assert {o.key: o.size for o in objects if o.regular} == {k: len(v) for k, v in LANDED.items()}
    assert all(o.etag for o in objects)
    irregular = [o.key for o in objects if not o.regular]
    # Local: a folder is an entry of its own (quarantined as it is); S3 and memory: no object.
    assert irregular == (["orders/sub"] if adapter.lists_folders else [])
    before = {o.key: o.etag for o in objects}
    adapter.land("orders/a.csv", b"a new version, of another size")
    after = {o.key: o.etag for o in store.list_landing()}
    assert after["orders/a.csv"] != before["orders/a.csv"], "a new version, a new tag"
    assert after["products/c.csv"] == before["products/c.csv"]


def test_claim_takes_the_listed_version_and_is_idempotent(adapter: Adapter) -> None:
    store = landed(adapter)
    entries = manifest(adapter, store)
    listed_versions = [(e.key, e.etag, e.size) for e in entries]
    store.claim(EID, entries)
    assert [(e.key, e.etag, e.size) for e in entries] == listed_versions
    assert [e.status for e in entries] == ["claimed"] * len(LANDED)
    assert all(e.location for e in entries)
    first = [(e.key, e.etag, e.size, e.location) for e in entries]
    store.claim(EID, entries)  # again, on the same entries
    assert [(e.key, e.etag, e.size, e.location) for e in entries] == first
    resumed = [replace(e) for e in entries]  # as a resumed execution reads its manifest
    store.claim(EID, resumed)
    assert [(e.key, e.etag, e.size, e.location) for e in resumed] == first
    # Local: the claim moved the files out of landing; S3 and memory: they stay listed.
    assert bool(listed(store)) is not adapter.claim_moves


def test_local_path_gives_exactly_the_claimed_bytes(adapter: Adapter) -> None:
    store, entries = claimed(adapter)
    for entry in entries:
        path = store.local_path(EID, entry)
        assert isinstance(path, Path) and path.read_bytes() == LANDED[entry.key]
        assert store.local_path(EID, entry).read_bytes() == LANDED[entry.key], "asked again"


def test_claim_marks_a_vanished_object_gone(adapter: Adapter) -> None:
    store = landed(adapter)
    entries = manifest(adapter, store)
    adapter.unland("order_items/b.csv")
    store.claim(EID, entries)
    assert {e.key: e.status for e in entries} == {
        "orders/a.csv": "claimed",
        "order_items/b.csv": "gone",
        "products/c.csv": "claimed",
    }


def test_an_untouched_claim_is_not_being_written(adapter: Adapter) -> None:
    store, entries = claimed(adapter)
    assert [store.still_being_written(EID, e) for e in entries] == [False] * len(entries)
    entry = entries[0]
    with store.local_path(EID, entry).open("ab") as out:
        out.write(b"2,2,2024-03-01 11:00:00,complete\n")
    # Local: the engine's file IS the claimed file, and a writer appending to it changes
    # it. S3 and memory: the object appears whole; the engine's file is only a copy.
    assert store.still_being_written(EID, entry) is adapter.writes_in_place


def test_a_newer_upload_under_a_claimed_key_is_never_moved_or_lost(adapter: Adapter) -> None:
    from ecompipe.errors import StoreError

    store, entries = claimed(adapter)
    entry = next(e for e in entries if e.key == "orders/a.csv")
    newer = b"order_id,user_id,created_at,status\n9,9,2024-03-09 10:00:00,complete\n"
    adapter.land(entry.key, newer)
    if adapter.keeps_claimed_version:
        assert store.local_path(EID, entry).read_bytes() == LANDED[entry.key]
    else:
        # S3 keeps the latest version only: the claimed one cannot be read any more.
        with pytest.raises(StoreError, match="changed after it was claimed"):
            store.local_path(EID, entry)
    store.archive(EID, entry)
    archived = adapter.read("archive", f"{EID}/{entry.key}")
    if adapter.keeps_claimed_version:
        assert (entry.status, archived) == ("archived", LANDED[entry.key])
    else:
        assert (entry.status, archived) == ("gone", None)
    assert adapter.read("landing", entry.key) == newer, "the newer upload waits in landing"


@pytest.mark.parametrize(
    ("move", "status"),
    [("archive", "archived"), ("quarantine", "quarantined")],
    ids=["archive", "quarantine"],
)
def test_a_move_is_verified_and_idempotent(adapter: Adapter, move: str, status: str) -> None:
    store, entries = claimed(adapter)
    for entry in entries:
        getattr(store, move)(EID, entry)
        assert entry.status == status and entry.location
        where = entry.location
        getattr(store, move)(EID, entry)  # again, after a crash
        assert (entry.status, entry.location) == (status, where)
        assert adapter.read(move, f"{EID}/{entry.key}") == LANDED[entry.key]
        assert adapter.read("landing", entry.key) is None
    assert listed(store) == {}


@pytest.mark.parametrize("move", ["archive", "quarantine"])
def test_a_move_never_overwrites_other_bytes(adapter: Adapter, move: str) -> None:
    from ecompipe.errors import PermanentStoreError

    store, entries = claimed(adapter)
    entry = entries[0]
    other = bytes(reversed(LANDED[entry.key]))  # the same size, other bytes
    adapter.place(move, f"{EID}/{entry.key}", other)
    with pytest.raises(PermanentStoreError, match="refusing to overwrite"):
        getattr(store, move)(EID, entry)
    assert adapter.read(move, f"{EID}/{entry.key}") == other
    assert entry.status == "claimed"
    assert store.local_path(EID, entry).read_bytes() == LANDED[entry.key], "nothing lost"


def test_restore_copies_quarantined_bytes_into_a_claim_and_keeps_them(adapter: Adapter) -> None:
    """A replay's claim: the quarantined bytes, copied (the original stays); idempotent; read,
    claimed and archived like any claimed object."""
    from ecompipe.errors import PermanentStoreError

    store, entries = claimed(adapter)
    entry = entries[0]
    store.quarantine(EID, entry)
    fixed = LANDED[entry.key] + b"2,2,2024-03-02 10:00:00,complete\n"  # fixed in place
    adapter.place("quarantine", f"{EID}/{entry.key}", fixed)
    again = replace(entry, status="claimed", location=None)
    store.restore(EID, OTHER, [again])
    store.restore(EID, OTHER, [again])  # again, after a crash
    assert (again.status, again.size) == ("claimed", len(fixed)) and again.location
    assert store.local_path(OTHER, again).read_bytes() == fixed
    assert adapter.read("quarantine", f"{EID}/{entry.key}") == fixed, "the original is kept"
    store.claim(OTHER, [again])  # ValidateFiles claims the manifest: the copy stays claimed
    assert again.status == "claimed" and store.local_path(OTHER, again).read_bytes() == fixed
    store.archive(OTHER, again)
    assert adapter.read("archive", f"{OTHER}/{entry.key}") == fixed
    assert adapter.read("quarantine", f"{EID}/{entry.key}") == fixed
    gone = replace(entries[1], status="claimed", location=None)
    with pytest.raises(PermanentStoreError, match="cannot replay"):
        store.restore(EID, "exec-contract-3", [gone])


def test_unclaim_of_a_restored_entry_gives_its_copy_to_landing(adapter: Adapter) -> None:
    """A replay that fails gives its copy back to landing (beside a newer upload of the key,
    never over it); the quarantined original stays."""
    store, entries = claimed(adapter)
    first, second = entries[0], entries[1]
    for entry in (first, second):
        store.quarantine(EID, entry)
    again = [replace(e, status="claimed", location=None) for e in (first, second)]
    store.restore(EID, OTHER, again)
    newer = b"a newer upload\n"
    adapter.land(second.key, newer)
    for entry in again:
        store.unclaim(OTHER, entry)
        store.unclaim(OTHER, entry)  # again, after a crash
        assert entry.status == "returned"
    on_landing = listed(store)
    assert adapter.read("landing", first.key) == LANDED[first.key]
    assert adapter.read("landing", second.key) == newer, "a newer upload is never overwritten"
    beside = [k for k in on_landing if k not in LANDED]
    assert len(beside) == 1 and OTHER in beside[0], on_landing
    assert adapter.read("landing", beside[0]) == LANDED[second.key]
    for entry in (first, second):
        assert adapter.read("quarantine", f"{EID}/{entry.key}") == LANDED[entry.key]


def test_unclaim_gives_the_object_back_to_landing(adapter: Adapter) -> None:
    store, entries = claimed(adapter)
    entry = entries[0]
    store.unclaim(EID, entry)
    assert entry.status == "returned"
    store.unclaim(EID, entry)  # again, after a crash
    assert entry.status == "returned"
    assert adapter.read("landing", entry.key) == LANDED[entry.key]
    assert listed(store).get(entry.key) == len(LANDED[entry.key])
    assert adapter.read("archive", f"{EID}/{entry.key}") is None


def test_put_report_stores_it_in_quarantine(adapter: Adapter, tmp_path: Path) -> None:
    store = adapter.ports().store()
    source = tmp_path / "report.json"
    source.write_text('{"files": []}', encoding="utf-8")
    address = store.put_report(EID, "validation_report.json", source)
    assert EID in address and address.endswith("validation_report.json")
    assert adapter.read("quarantine", f"{EID}/validation_report.json") == b'{"files": []}'
    source.write_text('{"files": ["redone"]}', encoding="utf-8")
    store.put_report(EID, "validation_report.json", source)  # a redone validation's report
    assert adapter.read("quarantine", f"{EID}/validation_report.json") == source.read_bytes()


def test_fetch_report_gives_back_what_put_report_stored(adapter: Adapter, tmp_path: Path) -> None:
    store = adapter.ports().store()
    target = tmp_path / "fetched.csv"
    assert store.fetch_report(EID, "rejects.csv", target) is False
    assert not target.exists()
    source = tmp_path / "rejects.csv"
    source.write_bytes(b'file,line,column,reason,text\r\no/a.csv,7,user_id,bad_int,"1,x"\n')
    store.put_report(EID, "rejects.csv", source)
    # Another handle (the console reads what a pipeline process stored) sees the same bytes.
    again = adapter.ports().store()
    assert again.fetch_report(EID, "rejects.csv", target) is True
    assert target.read_bytes() == source.read_bytes()
    other = tmp_path / "other.csv"
    assert again.fetch_report(OTHER, "rejects.csv", other) is False
    assert again.fetch_report(EID, "validation_report.json", other) is False
    assert not other.exists()


def test_fetch_report_never_leaves_the_execution_folder(adapter: Adapter, tmp_path: Path) -> None:
    """Names come from URLs: none reaches another execution's report or another area."""
    adapter.place("quarantine", f"{EID}/rejects.csv", b"secret-ish")
    adapter.place("archive", f"{EID}/rejects.csv", b"archived")
    store = adapter.ports().store()
    target = tmp_path / "fetched"
    for execution_id, name in [
        (OTHER, f"../{EID}/rejects.csv"),
        ("..", f"{EID}/rejects.csv"),
        (f"../archive/{EID}", "rejects.csv"),
        (EID, "../../archive/" + EID + "/rejects.csv"),
    ]:
        assert store.fetch_report(execution_id, name, target) is False, (execution_id, name)
        assert not target.exists()


def stage(store: Any, execution_id: str, data: dict[str, bytes]) -> None:
    """Stage files (by name) as validation does, and make them durable."""
    staging = store.staging_dir(execution_id)
    for name, content in data.items():
        (staging / name).write_bytes(content)
    store.save_staging(execution_id)


def staged_files(store: Any, execution_id: str) -> dict[str, bytes]:
    folder = store.staging_dir(execution_id)
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_saved_staging_is_found_by_another_handle(adapter: Adapter) -> None:
    data = {"orders.parquet": b"PAR1 orders", "rejects.csv": b"file,line\n"}
    stage(adapter.ports().store(), EID, data)
    # The transform task (another container on AWS) opens a store of its own.
    assert staged_files(adapter.ports().store(), EID) == data


def test_saved_staging_is_exactly_the_last_attempt(adapter: Adapter) -> None:
    """A redone validation restages from scratch (engines.base.fresh_staging): what it no
    longer stages must not be found, or published, from the attempt before."""
    store = adapter.ports().store()
    stage(store, EID, {"orders.parquet": b"PAR1 first", "products.parquet": b"PAR1 first"})
    redo = adapter.ports().store()  # the retried task, in another container on AWS
    staging = redo.staging_dir(EID)
    (staging / "products.parquet").unlink()
    stage(redo, EID, {"orders.parquet": b"PAR1 second"})
    assert staged_files(adapter.ports().store(), EID) == {"orders.parquet": b"PAR1 second"}
    redo.publish_batch(EID, 1)
    assert dict(redo.curated_log().batches) == {"orders": (1,), "order_items": (), "products": ()}


def test_publish_batch_is_idempotent_and_withdraw_batch_removes_it(adapter: Adapter) -> None:
    store = adapter.ports().store()
    stage(store, EID, {"orders.parquet": b"PAR1 o3", "order_items.parquet": b"PAR1 i3"})
    stage(store, OTHER, {"orders.parquet": b"PAR1 o4"})
    store.publish_batch(EID, 3)
    store.publish_batch(EID, 3)  # again, after a crash
    store.publish_batch(OTHER, 4)
    log = adapter.ports().store().curated_log()
    assert dict(log.batches) == {"orders": (3, 4), "order_items": (3,), "products": ()}
    assert [Path(f).read_bytes() for f in log.files("orders")] == [b"PAR1 o3", b"PAR1 o4"]
    assert [Path(f).read_bytes() for f in log.files("order_items")] == [b"PAR1 i3"]
    in_place = store.curated_log(uri=True)
    assert in_place.batches == log.batches
    # S3: the log in place (s3a://) for engines on other machines; else the local folder.
    assert in_place.is_uri is adapter.curated_uri
    store.withdraw_batch(OTHER, 4)
    store.withdraw_batch(OTHER, 4)  # again: no error
    store.withdraw_batch(OTHER, 99)  # never published: no error
    log = store.curated_log()
    assert dict(log.batches) == {"orders": (3,), "order_items": (3,), "products": ()}
    assert [Path(f).read_bytes() for f in log.files("orders")] == [b"PAR1 o3"]


def test_cleanup_drops_the_working_data_only(adapter: Adapter) -> None:
    store, entries = claimed(adapter)
    for entry in entries:
        store.local_path(EID, entry)
        store.archive(EID, entry)
    stage(store, EID, {"orders.parquet": b"PAR1 o1"})
    store.publish_batch(EID, 1)
    store.cleanup(EID)
    assert staged_files(store, EID) == {}
    assert staged_files(adapter.ports().store(), EID) == {}
    assert dict(store.curated_log().batches)["orders"] == (1,)
    assert all(adapter.read("archive", f"{EID}/{k}") == v for k, v in LANDED.items())


def _state_update(outbox: Path, batches: tuple[int, ...], files: dict[str, bytes]) -> Any:
    """A new current state (engines/current.py) naming ``files`` (one per orders partition,
    ``orders/order_month=<p>/<name>``), written to ``outbox`` as a transform leaves them."""
    from ecompipe.engines.current import CurrentState, Part, StateUpdate

    for name, data in files.items():
        (outbox / name).parent.mkdir(parents=True, exist_ok=True)
        (outbox / name).write_bytes(data)
    parts = {"orders": {n.split("=")[1].split("/")[0]: Part((n,), 1) for n in files}}
    return StateUpdate(CurrentState(batches, parts, batches[-1:]), outbox, tuple(files))


def test_commit_state_replaces_the_current_state_and_withdraw_removes_it(
    adapter: Adapter, tmp_path: Path
) -> None:
    """A committed state is what the next handle's curated log holds (files readable where
    it says, in place too); a newer commit replaces it, its older files gone from the
    listing; withdrawing a batch the state folded removes the state, another batch not."""
    store = adapter.ports().store()
    for eid, seq in ((EID, 1), (OTHER, 2)):
        stage(store, eid, {"orders.parquet": f"PAR1 o{seq}".encode()})
        store.publish_batch(eid, seq)
    assert store.curated_log().state is None
    first = _state_update(tmp_path / "a", (1,), {"orders/order_month=2024-01/x1.parquet": b"s1"})
    store.commit_state(first)
    store.commit_state(first)  # again, after a kill: no error, same state
    log = adapter.ports().store().curated_log()
    assert log.state == first.state
    assert [Path(f).read_bytes() for f in log.state_files("orders")] == [b"s1"]
    second = _state_update(
        tmp_path / "b",
        (1, 2),
        {
            "orders/order_month=2024-01/x2.parquet": b"s2",
            "orders/order_month=2024-02/x3.parquet": b"s3",
        },
    )
    store.commit_state(second)
    log = adapter.ports().store().curated_log()
    assert log.state == second.state
    assert [Path(f).read_bytes() for f in log.state_files("orders")] == [b"s2", b"s3"]
    assert [Path(f).read_bytes() for f in log.state_files("orders", ["2024-02"])] == [b"s3"]
    in_place = store.curated_log(uri=True)
    assert in_place.state == second.state
    assert [f.rsplit("/", 1)[1] for f in in_place.summary()["datasets"]["orders"]["files"]] == [
        "x2.parquet",
        "x3.parquet",
    ]
    store.withdraw_batch(EID, 99)  # a batch the state never folded: kept
    assert adapter.ports().store().curated_log().state == second.state
    store.withdraw_batch(OTHER, 2)
    assert adapter.ports().store().curated_log().state is None
    assert dict(store.curated_log().batches)["orders"] == (1,)
