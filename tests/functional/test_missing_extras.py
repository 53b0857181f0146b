"""A missing optional extra (boto3, pyspark) is one line naming the pip command, exit 2.

The real console entry point runs in a subprocess whose PYTHONPATH starts with stub packages
``boto3`` and ``pyspark`` that raise ModuleNotFoundError on import, as a missing package does
(the real ones are installed in the test environment, so they have to be shadowed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tests.support import DATASETS, land

pytestmark = [pytest.mark.local]

HAND = FIXTURES / "hand"
AWS_LINE = "ecompipe: error: the aws backend needs boto3: pip install 'ecompipe[aws]'"
SPARK_LINE = "ecompipe: error: the spark engine needs pyspark: pip install 'ecompipe[spark]'"


def _stubs(folder: Path) -> Path:
    """Packages that fail to import exactly as an absent one does."""
    for module in ("boto3", "pyspark"):
        package = folder / module
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}'\", name={module!r})\n",
            encoding="utf-8",
        )
    return folder


def _run(args: list[str], stubs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import ecompipe

    src = Path(ecompipe.__file__).resolve().parents[1]  # the tree under test, not an install
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(stubs), str(src)]),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "ecompipe", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def _assert_one_line(done: subprocess.CompletedProcess[str], line: str) -> None:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == line


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["run", "--backend", "aws"],
        ["metrics", "--backend", "aws"],
        ["aws", "bootstrap"],
        ["lock", "--backend", "aws"],
        ["task", "validate"],
    ],
    ids=lambda a: " ".join(a),
)
def test_every_aws_path_without_boto3_is_one_line(
    args: list[str], tmp_path: Path, workspace: Path
) -> None:
    stubs = _stubs(tmp_path / "stubs")
    extra = ["--workspace", str(workspace)] if args[0] in ("run", "metrics", "lock") else []
    # No BUCKET_NAME, TASK_TOKEN...: the missing package is what the user must fix first.
    _assert_one_line(_run([*args, *extra], stubs), AWS_LINE)


@pytest.mark.slow
def test_the_state_machine_needs_no_boto3(tmp_path: Path) -> None:
    done = _run(["aws", "state-machine"], _stubs(tmp_path / "stubs"))
    assert done.returncode == 0, done.stderr
    assert '"StartAt"' in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("how", ["option", "env"])
def test_spark_without_pyspark_is_one_line_and_touches_nothing(
    how: str, tmp_path: Path, workspace: Path
) -> None:
    land(workspace, {d: HAND / f"{d}.csv" for d in DATASETS})
    before = sorted(p.relative_to(workspace) for p in workspace.rglob("*"))
    args = ["run", "--workspace", str(workspace)]
    env = {}
    if how == "option":
        args += ["--engine", "spark"]
    else:
        env["ECOMPIPE_ENGINE"] = "spark"
    _assert_one_line(_run(args, _stubs(tmp_path / "stubs"), **env), SPARK_LINE)
    # Checked before the run claims anything: the files are still in landing, no execution.
    assert sorted(p.relative_to(workspace) for p in workspace.rglob("*")) == before
    for dataset in DATASETS:
        assert (workspace / "landing" / dataset / f"{dataset}.csv").is_file()


@pytest.mark.slow
def test_watch_and_demo_with_spark_without_pyspark_are_one_line(
    tmp_path: Path, workspace: Path
) -> None:
    stubs = _stubs(tmp_path / "stubs")
    watched = _run(
        ["watch", "--workspace", str(workspace), "--timeout", "30"], stubs, ECOMPIPE_ENGINE="spark"
    )
    _assert_one_line(watched, SPARK_LINE)
    fresh = tmp_path / "demo"
    demo = _run(["demo", "--workspace", str(fresh)], stubs, ECOMPIPE_ENGINE="spark")
    _assert_one_line(demo, SPARK_LINE)
    assert not fresh.exists()  # checked before the workspace is made


@pytest.mark.fast
def test_a_missing_dependency_of_the_extra_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecompipe import extras
    from ecompipe.errors import MissingExtraError

    package = tmp_path / "fake_extra_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("import fake_extra_dependency\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtraError) as caught:
        extras.require(extras.Extra("fake_extra_pkg", "aws", "the aws backend"))
    assert caught.value.problems == [
        "the aws backend needs fake_extra_pkg: pip install 'ecompipe[aws]' "
        "(No module named 'fake_extra_dependency')"
    ]
    assert caught.value.code == "Ecompipe.MissingExtra"
