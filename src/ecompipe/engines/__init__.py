"""Engines run the contract checks and the KPI SQL. Pick one with :func:`create_engine`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecompipe import extras
from ecompipe.errors import ConfigError

if TYPE_CHECKING:
    from ecompipe.config import Settings
    from ecompipe.engines.base import Engine


def require_engine(settings: Settings) -> None:
    """Raise MissingExtraError now when ``settings.engine`` needs an extra that is missing.

    Callers check before a run claims anything: the engine itself starts only inside
    ValidateFiles, where a terminal error would end the execution with its files quarantined.
    """
    if settings.engine == "spark":
        # engines/spark.py imports pyspark only when the session starts, so importing that
        # module proves nothing: import pyspark itself.
        extras.require(extras.SPARK)


def create_engine(settings: Settings, temp_dir: str | None = None) -> Engine:
    """The engine named by ``settings.engine``; heavy engines are imported only here."""
    require_engine(settings)
    if settings.engine == "duckdb":
        from ecompipe.engines.duckdb import DuckDBEngine

        return DuckDBEngine(settings, temp_dir=temp_dir)
    if settings.engine == "spark":
        from ecompipe.engines.spark import SparkEngine

        return SparkEngine(settings, temp_dir=temp_dir)
    raise ConfigError([f"unknown engine {settings.engine!r}"])
