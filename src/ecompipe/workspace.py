"""The embedded workspace: one folder holding the bucket, the database and working data.

<workspace>/
  ecompipe.toml            settings (see `ecompipe config`)
  ecompipe.db              SQLite: lock, executions, manifests, the two metrics tables
  landing/<prefix>/        the bucket: orders/, order_items/, products/
  archive/<execution-id>/  what each execution processed, under its original key
  quarantine/<execution-id>/ rejected files, rejects.csv, validation_report.json
  inflight/<execution-id>/ objects an execution has claimed and not yet archived
  staging/<execution-id>/  validated, typed rows waiting for the transform
  curated/<dataset>/       the curated log: one Parquet file per batch
  notifications.jsonl      every notification, one JSON object a line

``ecompipe init`` creates it (ecompipe.wiring.init_workspace: the database schema belongs to
the SQLite adapters, which this module, below them, does not import).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ecompipe.config import CONFIG_FILE_NAME, DEFAULT_WORKSPACE, setting_docs
from ecompipe.errors import WorkspaceError

DB_NAME = "ecompipe.db"


@dataclass(frozen=True)
class Workspace:
    """Paths of one workspace."""

    root: Path

    @property
    def config_file(self) -> Path:
        """The workspace's settings file."""
        return self.root / CONFIG_FILE_NAME

    @property
    def db(self) -> Path:
        """The SQLite database."""
        return self.root / DB_NAME

    def __getattr__(self, name: str) -> Path:
        if name in {"landing", "archive", "quarantine", "inflight", "staging", "curated", "tmp"}:
            return self.root / name
        raise AttributeError(name)

    @property
    def notifications(self) -> Path:
        """JSON-lines notification log."""
        return self.root / "notifications.jsonl"

    def exists(self) -> bool:
        """True when ``ecompipe init`` has created this workspace."""
        return self.db.is_file() and self.landing.is_dir()

    def require(self) -> Workspace:
        """Raise a one-line WorkspaceError unless the workspace exists."""
        if not self.root.exists():
            raise WorkspaceError(
                f"no workspace at {self.root}: run `ecompipe init --workspace {self.root}` "
                "(or set ECOMPIPE_WORKSPACE)"
            )
        if not self.exists():
            raise WorkspaceError(
                f"{self.root} is not an ecompipe workspace (no {DB_NAME} or landing/): "
                f"run `ecompipe init --workspace {self.root}`"
            )
        return self


def workspace_from(option: Path | None, env: dict[str, str] | None = None) -> Workspace:
    """The workspace named by ``--workspace``, else ECOMPIPE_WORKSPACE, else the default."""
    env = dict(os.environ) if env is None else env
    if option is not None:
        return Workspace(option)
    if env.get("ECOMPIPE_WORKSPACE"):
        return Workspace(Path(env["ECOMPIPE_WORKSPACE"]))
    return Workspace(DEFAULT_WORKSPACE)


def default_config_text() -> str:
    """A config file listing every setting, commented out at its default."""
    lines = [
        "# ecompipe settings. Precedence: command-line option > environment variable >",
        "# this file > default. Uncomment a line to change it.",
        "[ecompipe]",
    ]
    for name, env, default, doc in setting_docs():
        lines.append(f"# {doc} (env {env})")
        value = default if default.replace(".", "", 1).isdigit() else f'"{default}"'
        lines.append(f"# {name} = {value}")
    return "\n".join(lines) + "\n"
