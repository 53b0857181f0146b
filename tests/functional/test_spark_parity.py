"""The Spark engine gives exactly the DuckDB engine's results on the same input.

Each case runs `ecompipe run` twice on identical workspaces, once per engine, and compares
everything a user can see: `ecompipe metrics --json`, every validation report (execution ids
aside) and every rejects.csv byte for byte. One SparkSession serves the whole module (the
engine keeps one per process), so the JVM starts once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, ecompipe, metrics_json
from tests.support import DUPLICATE_CASES, clean_batch, mutated_batch, write_batch

pytestmark = [
    pytest.mark.spark,
    pytest.mark.duckdb,
    pytest.mark.local,
    pytest.mark.slow,
    pytest.mark.xdist_group("spark"),
]

ENGINES = ("duckdb", "spark")
HAND_DIRTY = FIXTURES / "hand_dirty"


@pytest.fixture(scope="module", autouse=True, params=["local"])
def spark_master(request: pytest.FixtureRequest) -> Iterator[str]:
    """The process's SparkSession, in local mode, or on the standalone cluster
    (tests/spark_cluster.py) for the tests marked ``ON_CLUSTER``; started once per master
    for the module (pytest groups the tests by master), stopped after. ``SPARK_MASTER`` is
    set meanwhile, so the engine the runs start knows where its session runs."""
    from ecompipe.config import Settings
    from ecompipe.engines.spark import spark_session, stop_session

    master, env = "local[2]", {}
    if request.param == "cluster":
        cluster = request.getfixturevalue("spark_cluster")
        master, env = cluster.url, cluster.env
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        settings = Settings(spark_master=master, spark_conf="spark.ecompipe.probe=yes")
        assert spark_session(settings).sparkContext.master == master
        yield master
    finally:
        stop_session()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: Tests that run on the cluster too (the whole module takes minutes): what a cluster changes
#: is where rows are read, numbered and written, so the test of files split across many
#: partitions (and so both executors): positions, first duplicates and rejects across them.
ON_CLUSTER = pytest.mark.parametrize("spark_master", ["local", "cluster"], indirect=True)


def test_session_settings() -> None:
    """UTC, ANSI on, the local driver heap default and the extra settings are applied."""
    from ecompipe.config import Settings
    from ecompipe.engines.spark import local_driver_memory, spark_session

    conf = spark_session(Settings()).sparkContext.getConf()
    assert conf.get("spark.sql.session.timeZone") == "UTC"
    assert conf.get("spark.sql.ansi.enabled") == "true"
    assert conf.get("spark.driver.memory") == local_driver_memory()
    assert conf.get("spark.ecompipe.probe") == "yes"


def _outputs(ws: Path) -> dict[str, Any]:
    """What a user sees after runs: metrics, validation reports and rejects, in run order."""
    reports, rejects = [], []
    for folder in sorted((ws / "quarantine").iterdir(), key=lambda p: p.stat().st_mtime_ns):
        report_file = folder / "validation_report.json"
        if report_file.is_file():
            report = json.loads(report_file.read_text(encoding="utf-8"))
            report.pop("execution_id")
            reports.append(report)
        rejects_file = folder / "rejects.csv"
        if rejects_file.is_file():
            rejects.append(rejects_file.read_bytes().decode("utf-8"))
    return {"metrics": metrics_json(ws), "reports": reports, "rejects": rejects}


def _run_batches(root: Path, engine: str, batches: list[dict[str, list[Path]]]) -> dict[str, Any]:
    """Land each batch in a fresh workspace and run it with ``engine``; return the outputs."""
    ws = root / engine
    assert ecompipe("init", workspace=ws).exit_code == 0
    for batch in batches:
        for dataset, paths in batch.items():
            for p in paths:
                shutil.copyfile(p, ws / "landing" / dataset / p.name)
        result = ecompipe("run", "--engine", engine, "--quiet", workspace=ws)
        assert result.exit_code in (0, 1), result.output
    return _outputs(ws)


def _assert_same(root: Path, batches: list[dict[str, list[Path]]]) -> dict[str, Any]:
    duck, spark = (_run_batches(root, e, batches) for e in ENGINES)
    assert spark["reports"] == duck["reports"]
    assert spark["rejects"] == duck["rejects"]
    assert spark["metrics"] == duck["metrics"]
    return duck


def _files(folder: Path) -> dict[str, list[Path]]:
    return {ds: sorted((folder / ds).glob("*.csv")) for ds in ("orders", "order_items", "products")}


def test_hand_dirty_fixture(tmp_path: Path) -> None:
    """BOM, CRLF, quoted line breaks, blank lines, a row of the wrong shape, every reason."""
    main = {ds: [HAND_DIRTY / f"{ds}.csv"] for ds in ("orders", "order_items", "products")}
    out = _assert_same(tmp_path, [main])
    assert out["rejects"] and out["metrics"]["order_metrics"]


@pytest.mark.parametrize("variant", ["missing_column", "no_rows", "empty", "error_rate"])
def test_hand_dirty_file_verdicts(tmp_path: Path, variant: str) -> None:
    """Each whole-file reason gives the same verdict (the other two files stay good)."""
    batch = {ds: [HAND_DIRTY / f"{ds}.csv"] for ds in ("orders", "order_items", "products")}
    for p in (HAND_DIRTY / variant).glob("*.csv"):
        batch[p.stem] = [p]
    _assert_same(tmp_path, [batch])


def test_unreadable_file(tmp_path: Path) -> None:
    """Invalid UTF-8 makes the file unreadable on both engines."""
    batch = {ds: [HAND_DIRTY / f"{ds}.csv"] for ds in ("order_items", "products")}
    batch["orders"] = [HAND_DIRTY / "unreadable" / "orders.csv"]
    out = _assert_same(tmp_path, [batch])
    verdicts = {f["key"]: f["reason"] for f in out["reports"][0]["files"]}
    assert verdicts["orders/orders.csv"] == "unreadable"


@pytest.mark.parametrize("dirty", [False, True], ids=["clean", "dirty"])
def test_generated_data(tmp_path: Path, dirty: bool) -> None:
    """Generated TheLook-shaped data, clean and with every injected fault."""
    from ecompipe.sample import generate_sample

    generate_sample(tmp_path / "gen", 3000, seed=7, dirty=dirty)
    out = _assert_same(tmp_path, [_files(tmp_path / "gen")])
    assert bool(out["rejects"]) is dirty


def test_repeated_keys_near_and_far(tmp_path: Path) -> None:
    """Keys repeated among dense keys (counted with bitmaps) and far from them (a span too
    wide for bitmaps): the same duplicates dropped and rejected."""
    lines = DUPLICATE_CASES["near"][0] + DUPLICATE_CASES["far"][0]
    landed = write_batch(tmp_path / "gen", clean_batch({"orders": lines}))
    out = _assert_same(tmp_path, [{ds: [path] for ds, path in landed.items()}])
    assert out["reports"][0]["duplicates_dropped"]["orders"] == 2
    assert out["rejects"][0].count("conflicting_duplicate") == 2


def test_blank_lines_before_the_header(tmp_path: Path) -> None:
    """Files whose header comes after blank records (empty, whitespace, quoted-blank, a quoted
    line break), read line by line and in multiLine mode (a quoted line break in a row), one
    missing a column: the same verdicts, row counts and reject lines."""
    prefixes = [b"\n", b"  \n\t\n", b'""\n" "\n', b'"\n"\n', b"\xef\xbb\xbf\n"]
    extra = {
        "orders": ["40,x,2024-05-01 10:00:00,complete"],
        "order_items": ["900,1,1,-1.00"],
        "products": ['950,"SKU\nwith a line break",1.00,Tops,2.00', "951,S,abc,Tops,2.00"],
    }
    batch: dict[str, list[Path]] = {ds: [] for ds in extra}
    for n, prefix in enumerate(prefixes):
        for ds, content in clean_batch(extra, n=40).items():
            if ds == "order_items" and n == 1:
                content = content.replace("id,order_id,product_id", "id,order_id", 1)
            path = tmp_path / "gen" / ds / f"b{n}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(prefix + content.encode())
            batch[ds].append(path)
    out = _assert_same(tmp_path, [batch])
    verdicts = {f["key"]: f["reason"] for f in out["reports"][0]["files"]}
    assert verdicts["order_items/b1.csv"] == "missing_column"
    assert sum(reason is None for reason in verdicts.values()) == 14
    assert out["rejects"][0].count("bad_int") == 5


def test_randomly_mutated_files(tmp_path: Path) -> None:
    """A seeded differential test: two batches of five small files per dataset, each with
    random faults (columns reordered, renamed, added or missing; stray quotes and CRs, mixed
    line ends, odd values, wrong shapes, repeated keys across files); everything a user sees
    is the same on both engines."""
    batches = []
    for batch, seeds in enumerate((range(30, 35), range(35, 40))):
        files: dict[str, list[Path]] = {ds: [] for ds in ("orders", "order_items", "products")}
        for seed in seeds:
            for ds, content in mutated_batch(seed).items():
                path = tmp_path / "gen" / str(batch) / ds / f"m{seed:02d}.csv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                files[ds].append(path)
        batches.append(files)
    out = _assert_same(tmp_path, batches)
    verdicts = [f["reason"] for report in out["reports"] for f in report["files"]]
    # The faults reach every kind of verdict, so the comparison above covers them.
    assert {None, "unreadable", "error_rate", "missing_column"} <= set(verdicts)
    assert any(",bad_row_shape," in r for r in out["rejects"])


@pytest.fixture
def small_splits() -> Iterator[int]:
    """Spark splits each file it reads line by line into partitions of a few KB."""
    from ecompipe.config import Settings
    from ecompipe.engines.spark import spark_session

    spark = spark_session(Settings())
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    yield 4096
    spark.conf.unset("spark.sql.files.maxPartitionBytes")


# Records Spark's line reader skips or calls the wrong shape, inserted between generated rows.
ODD_LINES = [b"", b"   ", b"\t", b"\xc2\xa0", b"9,9", b"1,2,3,4,5,6,7,8,9,10"]


def _with_odd_lines(path: Path) -> None:
    """Put an odd line (blank, whitespace-only, wrong shape) after every 37th line."""
    eol = b"\r\n" if b"\r\n" in path.read_bytes()[:4096] else b"\n"
    lines = path.read_bytes().split(eol)
    out = lines[:1]
    for n, line in enumerate(lines[1:], start=1):
        out.append(line)
        if n % 37 == 0:
            out.append(ODD_LINES[(n // 37) % len(ODD_LINES)])
    path.write_bytes(eol.join(out))


@ON_CLUSTER
def test_files_read_line_by_line_across_many_partitions(tmp_path: Path, small_splits: int) -> None:
    """Quote-free files are split across partitions; positions, duplicates (first one wins)
    and rejects still come out as DuckDB's, with blank and wrong-shape lines in every part."""
    from ecompipe.config import Settings
    from ecompipe.engines import framing
    from ecompipe.engines.spark import spark_session
    from ecompipe.sample import generate_sample

    # Two files per dataset: their keys overlap, so the earlier file's rows win.
    generate_sample(tmp_path / "gen", 2500, seed=11, dirty=True, name="a")
    generate_sample(tmp_path / "gen", 1200, seed=12, dirty=True, name="b")
    files = _files(tmp_path / "gen")
    for ds in ("orders", "order_items"):
        mains = [p for p in files[ds] if not p.stem.endswith("_nocol")]
        assert len(mains) == 2
        for path in mains:
            _with_odd_lines(path)
            framed = framing.scan(path)
            assert (framed.problem, framed.one_line) == (None, True)  # line by line
            parts = spark_session(Settings()).read.text(str(path)).rdd.getNumPartitions()
            assert parts > 5
    out = _assert_same(tmp_path, [files])
    report = out["reports"][0]
    assert report["duplicates_dropped"]["orders"] > 0
    assert any(",bad_row_shape," in r for r in out["rejects"])


def test_batch_files_are_written_in_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch file Spark writes holds several row groups (so later reads split it across
    tasks), and the KPIs read back from it are still DuckDB's."""
    import duckdb

    from ecompipe.engines import spark
    from ecompipe.sample import generate_sample

    monkeypatch.setattr(spark, "_ROW_GROUP_BYTES", 16 << 10)
    generate_sample(tmp_path / "gen", 3000, seed=8)
    _assert_same(tmp_path, [_files(tmp_path / "gen")])
    for engine, at_least in (("spark", 3), ("duckdb", 1)):
        batch = tmp_path / engine / "curated" / "order_items" / "000000000001.parquet"
        (groups,) = duckdb.sql(
            f"SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{batch}')"
        ).fetchone() or (0,)
        assert groups >= at_least, engine


def test_sequence_of_batches(tmp_path: Path) -> None:
    """Across batches (curated log): items before their orders, re-delivery, changed rows."""
    from ecompipe.sample import generate_sample

    first = tmp_path / "b1"
    second = tmp_path / "b2"
    generate_sample(first, 1500, seed=3, dirty=True, name="one")
    # Another seed reuses the same keys with other values: later rows replace earlier ones.
    generate_sample(second, 2000, seed=4, dirty=True, name="two")
    one, two = _files(first), _files(second)
    batches = [
        one,  # its orphan items wait for orders 1501.., which batch two brings
        two,
        # Older versions re-delivered: the later batch wins again, dates move back.
        {"orders": one["orders"], "order_items": one["order_items"], "products": two["products"]},
    ]
    out = _assert_same(tmp_path, batches)
    assert len(out["reports"]) == len(batches)


def _sorted(result: Any) -> Any:
    """A TransformResult with its metric rows in a fixed order (engines return any order)."""
    result.order_metrics.sort(key=lambda m: m.order_date)
    result.category_metrics.sort(key=lambda m: (m.category, m.order_date))
    return result


def test_transform_reads_the_curated_log_in_place(tmp_path: Path) -> None:
    """On a cluster the engine reads the log by URI (s3a:// on AWS, file:// here): the same
    KPIs as from the local folder, and as DuckDB's; DuckDB refuses a URI."""
    from ecompipe.config import Settings
    from ecompipe.engines.base import CuratedLog
    from ecompipe.engines.duckdb import DuckDBEngine
    from ecompipe.engines.spark import SparkEngine
    from ecompipe.errors import EngineError
    from ecompipe.sample import generate_sample

    generate_sample(tmp_path / "b1", 800, seed=5, dirty=True, name="one")
    generate_sample(tmp_path / "b2", 900, seed=6, dirty=True, name="two")
    _run_batches(tmp_path, "duckdb", [_files(tmp_path / "b1"), _files(tmp_path / "b2")])
    folder = CuratedLog.in_folder(tmp_path / "duckdb" / "curated")
    assert folder.batches["orders"] == (1, 2)
    in_place = CuratedLog(f"file://{folder.root}", folder.batches)
    duck = DuckDBEngine(Settings(), temp_dir=str(tmp_path / "t1"))
    spark = SparkEngine(Settings(spark_master="local[2]"), temp_dir=str(tmp_path / "t2"))
    try:
        expected = _sorted(duck.transform(folder, 2))
        assert _sorted(spark.transform(in_place, 2)) == expected
        assert _sorted(spark.transform(folder, 2)) == expected
        with pytest.raises(EngineError, match="local curated log"):
            duck.transform(in_place, 2)
    finally:
        duck.close()
        spark.close()
    assert expected.affected_dates and expected.order_metrics and expected.category_metrics


def test_recompute_equals_duckdb(tmp_path: Path) -> None:
    """Two batches whose keys overlap, then every metric row lost: `recompute --engine spark`,
    of every date and of a range, reports and writes exactly what DuckDB's does."""
    from ecompipe.sample import generate_sample
    from tests.functional.test_recompute import WIPE, run_sql

    generate_sample(tmp_path / "b1", 300, seed=7, name="one")
    generate_sample(tmp_path / "b2", 150, seed=8, name="two")
    _run_batches(tmp_path, "duckdb", [_files(tmp_path / "b1"), _files(tmp_path / "b2")])
    ws = tmp_path / "duckdb"
    days = [r["order_date"] for r in metrics_json(ws)["order_metrics"]]
    ranges = [(), ("--from", days[len(days) // 3], "--to", days[2 * len(days) // 3])]
    seen: dict[tuple[str, tuple[str, ...]], Any] = {}
    for engine in ENGINES:
        for args in ranges:
            run_sql(ws, *WIPE)
            result = ecompipe("recompute", "--engine", engine, "--json", *args, workspace=ws)
            assert result.exit_code == 0, result.output
            done = json.loads(result.stdout)
            del done["seconds"], done["revision_id"]  # the time, and an id of its own
            seen[(engine, args)] = (done, metrics_json(ws))
    for args in ranges:
        assert seen[("spark", args)] == seen[("duckdb", args)], args
    assert seen[("duckdb", ())][1]["order_metrics"] and seen[("duckdb", ())][0]["rows_changed"]
