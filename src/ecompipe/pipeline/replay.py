"""Replay: an execution's quarantined files put back through the whole pipeline, once.

A replay is a new execution whose manifest is built from the quarantined objects of the
source execution (copied into its claim, never moved: the originals stay in quarantine),
then walks the workflow like any run: its batch is a new sequence number, so its rows follow
the same latest-wins rule. A file rejected again is quarantined under the replay, and a
later fix is a replay of that execution.

Exactly once: before the replay execution is created, the source's summary records
``replays: {key: replay execution}``. A marker counts while its execution exists with the
key in its manifest (not ``gone``): a crash before the manifest was recorded leaves a marker
that counts for nothing, and the file can be replayed again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ecompipe.errors import ConfigError
from ecompipe.stores.base import ExecutionLog, ManifestEntry


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay of ``source`` takes: ``entries`` (fresh manifest entries, claimed) and
    the files left out because an execution already replayed them (key -> execution)."""

    source: str
    entries: list[ManifestEntry]
    already: dict[str, str]


def replayed_by(log: ExecutionLog, source: str, key: str) -> str | None:
    """The execution that replayed ``key`` of ``source``, if one did (see the module doc)."""
    record = log.get(source)
    marker = (record.summary.get("replays") or {}).get(key) if record else None
    if marker is None or log.get(marker) is None:
        return None
    for entry in log.manifest(marker):
        if entry.key == key and entry.status != "gone":
            return str(marker)
    return None


def plan(log: ExecutionLog, source: str, keys: list[str] | None) -> ReplayPlan:
    """The replay of ``source``'s quarantined files (only ``keys``, when given).

    Raises ConfigError when ``source`` is still running or a key names no quarantined file
    of it.
    """
    record = log.get(source)
    if record is None:
        raise ConfigError([f"no execution {source!r}: see `ecompipe executions`"])
    if record.finished_at is None:
        raise ConfigError([f"{source} is still running: replay it once it has ended"])
    quarantined = [e for e in log.manifest(source) if e.status == "quarantined"]
    if keys:
        unknown = sorted(set(keys) - {e.key for e in quarantined})
        if unknown:
            raise ConfigError(
                [
                    f"{source} quarantined no file {', '.join(map(repr, unknown))}; "
                    f"its quarantined files: {', '.join(e.key for e in quarantined) or 'none'}"
                ]
            )
        quarantined = [e for e in quarantined if e.key in keys]
    entries, already = [], {}
    for e in quarantined:
        by = replayed_by(log, source, e.key)
        if by is not None:
            already[e.key] = by
        else:
            entries.append(replace(e, status="claimed", location=None))
    return ReplayPlan(source, entries, already)


def mark(log: ExecutionLog, source: str, keys: list[str], execution_id: str) -> None:
    """Record on ``source`` that ``execution_id`` replays ``keys`` (in the critical section:
    the read-modify-write of the summary is never concurrent)."""
    record = log.get(source)
    replays = dict((record.summary.get("replays") or {}) if record else {})
    replays.update(dict.fromkeys(keys, execution_id))
    log.save_summary(source, {"replays": replays})
