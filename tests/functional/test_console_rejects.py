"""The console's documents over an execution with thousands of rejected rows: the execution
page gets exactly its first ``limit`` rows and their true total, the quality page the rows'
problems per reason; the file rejected whole beside them is no row.

The items file is written by one rule (``_item``), so every rejected row's line, column,
reason and text is known without the code under test: row ``i`` is on line ``i + 1``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import ecompipe
from tests.support import clean_batch, write_batch

if TYPE_CHECKING:
    from ecompipe.wiring import LocalPorts

pytestmark = [pytest.mark.fast, pytest.mark.duckdb, pytest.mark.local]

ROWS = 6000  # 3 in 8 bad: 2,250 rejected rows, 3,000 problems
ITEMS = "order_items/batch.csv"


def _item(i: int) -> tuple[str, list[tuple[str, str]]]:
    """Row ``i``'s text and its problems (column, reason), in column order."""
    if i % 8 == 1:
        return f"{i},{i},x,{i}.50", [("product_id", "bad_int")]
    if i % 8 == 2:
        return f"{i},{i},1,-1.50", [("sale_price", "negative")]
    if i % 8 == 3:
        return f"{i},{i},x,abc", [("product_id", "bad_int"), ("sale_price", "bad_decimal")]
    return f"{i},{i},1,{i}.50", []


def _problems() -> list[dict[str, Any]]:
    """Every problem the rule puts in the items file, in file, line and column order."""
    return [
        {"file": ITEMS, "line": i + 1, "column": column, "reason": reason, "text": text}
        for i in range(1, ROWS + 1)
        for text, found in [_item(i)]
        for column, reason in found
    ]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPorts, str]]:
    """The batch ran (bad rows under the error rate; a second orders file missing a column,
    rejected whole): the workspace's ports and the execution. The tests only read it."""
    from ecompipe.wiring import LocalPorts
    from ecompipe.workspace import Workspace

    workspace = tmp_path_factory.mktemp("console-rejects") / "ws"
    assert ecompipe("init", workspace=workspace).exit_code == 0

    batch: dict[str, str | bytes] = {**clean_batch({}, n=50)}
    batch["order_items"] = "\n".join(
        ["id,order_id,product_id,sale_price"] + [_item(i)[0] for i in range(1, ROWS + 1)]
    )
    write_batch(workspace, batch)
    write_batch(workspace, {"orders": "order_id,user_id\n1,1\n"}, name="broken.csv")
    result = ecompipe("run", "--quiet", workspace=workspace, ECOMPIPE_MAX_ERROR_RATE="0.5")
    assert result.exit_code == 0, result.output
    ports = LocalPorts(Workspace(workspace))
    try:
        (record,) = ports.log().recent(5)
        yield ports, record.execution_id
    finally:
        ports.close()


def test_execution_document_lists_the_first_rows_and_counts_them_all(
    ran: tuple[LocalPorts, str],
) -> None:
    from ecompipe.console.documents import execution_document

    ports, execution = ran
    expected = _problems()
    assert len(expected) == 3000
    for limit in (0, 1, 700, len(expected), len(expected) + 5):
        doc = execution_document(ports.log(), ports.store(), execution, rejects_limit=limit)
        assert doc is not None
        json.dumps(doc)  # what the API sends as it is
        assert doc["rejects"] == {"total": len(expected), "rows": expected[:limit]}
    assert doc["files_rejected"] == 1  # orders/broken.csv: a file, never one of the rows


def test_quality_counts_each_problem_of_each_rejected_row(ran: tuple[LocalPorts, str]) -> None:
    from ecompipe.console.documents import quality_document

    ports, _ = ran
    log = ports.log()
    quality = quality_document(log, ports.store(), log.recent(5))
    # In order: most first, a tie by reason (dict equality alone would not see the order).
    assert list(quality["rows_rejected_by_reason"].items()) == sorted(
        Counter(p["reason"] for p in _problems()).items(), key=lambda kv: (-kv[1], kv[0])
    )
    assert list(quality["rows_rejected_by_reason"].items()) == [
        ("bad_int", 1500),
        ("bad_decimal", 750),
        ("negative", 750),
    ]
    assert quality["files_rejected_by_reason"] == {"missing_column": 1}
