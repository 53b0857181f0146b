"""Optional extras: ``ecompipe[aws]`` (boto3) and ``ecompipe[spark]`` (pyspark).

Both are imported lazily, where they are used. Every path that needs one first calls
:func:`require`, so a missing extra is one line naming the pip command (exit 2), never a
ModuleNotFoundError from deep inside, and never after the pipeline has touched a file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ecompipe.errors import MissingExtraError


@dataclass(frozen=True)
class Extra:
    """An optional dependency: the module to import, the extra that installs it, and what
    needs it (for the message)."""

    module: str
    extra: str
    needed_by: str


AWS = Extra("boto3", "aws", "the aws backend")
SPARK = Extra("pyspark", "spark", "the spark engine")


def require(extra: Extra) -> None:
    """Import ``extra.module`` now; raise MissingExtraError with the pip command if it fails.

    Importing (not only finding) the module is the check: a package that is present but
    broken, or whose own dependency is missing, fails here too. A module already imported
    costs nothing.
    """
    try:
        importlib.import_module(extra.module)
    except ImportError as exc:
        # Name the real culprit when it is a dependency of the extra (botocore for boto3).
        culprit = "" if exc.name in (None, extra.module) else f" ({exc})"
        raise MissingExtraError(
            [
                f"{extra.needed_by} needs {extra.module}: "
                f"pip install 'ecompipe[{extra.extra}]'{culprit}"
            ]
        ) from None
