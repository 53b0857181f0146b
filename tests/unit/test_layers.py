"""The layers of docs/DESIGN.md ("Layers (the house)") hold: the import-linter contracts in
pyproject.toml, checked here so that `make fast` shows a broken layer, not only CI."""

from __future__ import annotations

from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.mark.fast
def test_imports_keep_to_the_layers(capsys: pytest.CaptureFixture[str]) -> None:
    """Imports only go down, no circles, backends independent (what `lint-imports` checks)."""
    import importlinter.api  # noqa: F401 (configures import-linter's readers and graph)
    from importlinter.application.use_cases import lint_imports

    kept = lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)
    # On failure: each broken contract and the chain of imports that breaks it.
    assert kept, capsys.readouterr().out
