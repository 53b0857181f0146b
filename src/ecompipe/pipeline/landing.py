"""What has landed, and whether it may be taken: the complete-set rule applied to landed
objects no unfinished execution owns, with files still being written kept apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ecompipe import trigger
from ecompipe.config import Settings
from ecompipe.errors import IncompleteSetError
from ecompipe.stores.base import ExecutionLog, ObjectInfo, ObjectStore


@dataclass
class Landing:
    """Landed objects no unfinished execution owns (CSVs, and entries to quarantine as they
    are), split into those that may be taken now and those changed within the last
    ``settle_seconds``, which may still be being written."""

    ready: list[ObjectInfo]
    settling: list[ObjectInfo]


class LandingView:
    """Landing as one pipeline sees it over time (it remembers when it first saw each
    version: see :meth:`landing`). ``say`` hears what it waits for (a spinner)."""

    def __init__(
        self,
        store: ObjectStore,
        log: ExecutionLog,
        settings: Settings,
        say: Callable[[str], None],
    ) -> None:
        self.store, self.log, self.settings, self._say = store, log, settings, say
        #: key -> (version, when this pipeline first saw it).
        self._seen: dict[str, tuple[str, float]] = {}

    def landing(self) -> Landing:
        """What landed and no unfinished execution owns, ready or still settling.

        A name writers use while writing is never taken (trigger.is_in_progress). An object
        is ready once unchanged for ``settle_seconds`` and held open by no writer: by its own
        timestamp, or, when that cannot be trusted (a file server's clock ahead of ours),
        once this pipeline has seen the same version that long. Objects that appear whole
        (S3) are always ready.
        """
        owned = self.log.owned_keys()
        now, settle = time.time(), self.settings.settle_seconds
        ready: list[ObjectInfo] = []
        settling: list[ObjectInfo] = []
        for o in self.store.list_landing():
            if o.key in owned or trigger.is_in_progress(o.key):
                continue
            if o.regular and not trigger.is_csv_key(o.key):
                continue
            if self._seen.get(o.key, ("", 0.0))[0] != o.etag:
                self._seen[o.key] = (o.etag, now)
            if not o.held_open and (
                o.changed_at is None
                or now - o.changed_at >= settle
                or now - self._seen[o.key][1] >= settle
            ):
                ready.append(o)
            else:
                settling.append(o)
        return Landing(ready, settling)

    def missing(self, objects: list[ObjectInfo]) -> list[str]:
        """Datasets without a CSV among ``objects`` (empty: a complete set)."""
        return trigger.missing_datasets([o.key for o in objects], self.settings)

    def settled(self) -> Landing:
        """The landing, once files that would complete a set have settled.

        Waits only when the ready files alone miss a dataset and the settling ones would
        complete it, and then once, ``settle_seconds`` at most: a file that changed again
        meanwhile, or is held open by a writer, is still being written and is left for later.
        """
        landing = self.landing()
        if (
            not landing.settling
            or not self.missing(landing.ready)
            or self.missing(landing.ready + landing.settling)
        ):
            return landing
        # Long enough for every one of them to settle, unless it changes again or is held
        # open meanwhile: it is still being written then, and waiting longer would not do.
        now, settle = time.time(), self.settings.settle_seconds
        wait = max(
            min(settle - (now - (o.changed_at or now)), settle - (now - self._seen[o.key][1]))
            for o in landing.settling
        )
        self._say(f"waiting for {', '.join(o.key for o in landing.settling)} to settle")
        time.sleep(min(settle, max(0.0, wait)) + 0.05)
        return self.landing()

    def incomplete(self, landing: Landing) -> IncompleteSetError:
        """No complete set: which datasets miss, and which files are still being written."""
        now = time.time()
        return IncompleteSetError(
            self.missing(landing.ready),
            [
                f"{o.key} (held open by a writer)"
                if o.held_open
                else f"{o.key} (changed {max(0.0, now - (o.changed_at or now)):.1f}s ago)"
                for o in landing.settling
            ],
        )
