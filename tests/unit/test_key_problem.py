"""The one rule for object keys that may become a local path (trigger.key_problem), and the
S3 store's refusal to download anything else."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ecompipe.trigger import key_problem

if TYPE_CHECKING:
    from ecompipe.stores.aws.s3 import S3ObjectStore

pytestmark = [pytest.mark.fast]


@pytest.mark.parametrize(
    ("key", "names"),
    [
        ("orders/../../../x.csv", "'..'"),
        ("orders/..", "'..'"),
        ("orders/./x.csv", "'.'"),
        ("orders//x.csv", "''"),
        ("orders/x/", "''"),  # a "folder" object: its last segment is empty
        ("/orders/x.csv", "leading '/'"),
        ("orders/a\\b.csv", "backslash"),
        ("orders/..\\..\\x.csv", "backslash"),
        ("orders/nul\x00.csv", "U+0000"),
        ("orders/ctl\x01.csv", "U+0001"),
        ("orders/nl\n.csv", "U+000A"),
        ("orders/esc\x1b[2J.csv", "U+001B"),
        ("orders/us\x1f.csv", "U+001F"),
        ("orders/del\x7f.csv", "U+007F"),
        ("orders/c1\x80.csv", "U+0080"),
        ("orders/nel\x85.csv", "U+0085"),
        ("orders/c1\x9f.csv", "U+009F"),
        ("orders/" + "a" * 1014 + ".csv", "1,025 bytes"),  # 1,025 bytes in all
        ("orders/" + "é" * 508 + ".csv", "1,027 bytes"),  # bytes of UTF-8, not characters
        ("orders/" + "s" * 252 + ".csv", "256 bytes"),  # one segment over NAME_MAX
        ("orders/" + "é" * 126 + ".csv", "256 bytes"),
        ("orders/bad\udcff.csv", "UTF-8"),  # a local name of bytes that are not UTF-8
    ],
)
def test_each_rule_refuses_with_a_reason_naming_it(key: str, names: str) -> None:
    problem = key_problem(key)
    assert problem is not None and names in problem
    assert "\n" not in problem  # one line, whatever the key holds


@pytest.mark.parametrize(
    "key",
    [
        "orders/hand orders.csv",
        "orders/a+b=c,d;e&f@g.csv",
        "orders/commandes été 2024 東京 🛒.csv",
        "orders/..csv",  # dots inside a name are fine; only '.' and '..' segments are not
        "orders/x..y.CSV",
        "orders/" + "s" * 251 + ".csv",  # a segment of exactly 255 bytes
        "orders/" + "é" * 125 + "s.csv",  # 255 bytes of UTF-8
        "o/" + "/".join(["a" * 254] * 3) + "/" + "b" * 165,  # exactly 932 bytes (below)
        "orders/nbsp\u00a0zero\u200bwidth.csv",  # unusual, but not control characters
    ],
)
def test_good_keys_pass(key: str) -> None:
    assert key_problem(key) is None


def test_the_limits_are_bytes_at_the_edge() -> None:
    # S3's 1,024 bytes, less "quarantine/" and the longest execution name (80) and "/": a
    # landing key must keep its name when it is archived or quarantined.
    longest = 1024 - len("quarantine/") - 80 - 1
    exactly = "o/" + "/".join(["a" * 254] * 3) + "/" + "b" * 165
    assert len(exactly.encode()) == longest == 932
    assert key_problem(exactly) is None
    assert key_problem(exactly + "b") is not None
    assert len(f"quarantine/{'x' * 80}/{exactly}".encode()) == 1024


def test_an_unsafe_key_settles_under_a_safe_stand_in() -> None:
    import hashlib

    from ecompipe.trigger import settled_key

    assert settled_key("orders/a b.csv") == "orders/a b.csv"
    for key in ("orders/../../x.csv", "orders/a\b.csv", "orders/" + "a" * 1000 + ".csv"):
        stand_in = settled_key(key)
        assert stand_in == "unsafe/" + hashlib.sha256(key.encode()).hexdigest()
        assert key_problem(stand_in) is None


class _NoS3:
    """A client that fails the test if the store calls S3 at all."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"S3 was called ({name}) for a key that must be refused first")


def _store(root: Path) -> S3ObjectStore:
    from ecompipe.config import load_settings
    from ecompipe.stores.aws.s3 import S3ObjectStore

    return S3ObjectStore(_NoS3(), load_settings(env={"BUCKET_NAME": "landing"}), root)


@pytest.mark.parametrize(
    "key", ["orders/../../../../x.csv", "/etc/x.csv", "orders/a\\b.csv", "orders/n\x00.csv"]
)
def test_s3_local_path_refuses_an_unsafe_key_before_any_call(tmp_path: Path, key: str) -> None:
    from ecompipe.errors import PermanentStoreError, TerminalError
    from ecompipe.stores.base import ManifestEntry

    root = tmp_path / "scratch"
    store = _store(root)
    entry = ManifestEntry(key, "orders", 3, "etag")
    with pytest.raises(PermanentStoreError, match="refusing") as caught:
        store.local_path("exec-1", entry)
    assert isinstance(caught.value, TerminalError)  # not a data verdict, not retried
    assert "\x00" not in str(caught.value)  # the key is shown escaped
    assert not any(tmp_path.rglob("*x.csv")) and not root.exists()


def test_s3_local_path_refuses_a_path_that_resolves_outside_inflight(tmp_path: Path) -> None:
    """Whatever the rule misses (here a link planted in the scratch folder), the resolved
    path must stay inside <root>/<execution>/inflight."""
    from ecompipe.errors import PermanentStoreError
    from ecompipe.stores.base import ManifestEntry

    root, outside = tmp_path / "scratch", tmp_path / "outside"
    outside.mkdir()
    inflight = root / "exec-1" / "inflight"
    inflight.mkdir(parents=True)
    (inflight / "orders").symlink_to(outside, target_is_directory=True)
    store = _store(root)
    with pytest.raises(PermanentStoreError, match="leaves"):
        store.local_path("exec-1", ManifestEntry("orders/x.csv", "orders", 3, "etag"))
    assert list(outside.iterdir()) == []
