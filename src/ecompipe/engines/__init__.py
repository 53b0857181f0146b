"""Engines run the contract checks and the KPI SQL. Pick one with :func:`create_engine`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecompipe.errors import ConfigError

if TYPE_CHECKING:
    from ecompipe.config import Settings
    from ecompipe.engines.base import Engine


def create_engine(settings: Settings, temp_dir: str | None = None) -> Engine:
    """The engine named by ``settings.engine``; heavy engines are imported only here."""
    if settings.engine == "duckdb":
        from ecompipe.engines.duckdb import DuckDBEngine

        return DuckDBEngine(settings, temp_dir=temp_dir)
    if settings.engine == "spark":
        try:
            from ecompipe.engines.spark import SparkEngine
        except ImportError as exc:
            raise ConfigError(
                [f"engine 'spark' needs pyspark: pip install 'ecompipe[spark]' ({exc})"]
            ) from None
        return SparkEngine(settings, temp_dir=temp_dir)
    raise ConfigError([f"unknown engine {settings.engine!r}"])
