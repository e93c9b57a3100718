"""The local store answers a read of one batch on a second thread of the database, and still reads what was written
just before; a cursor that may need `getMore`, and anything inside a transaction, stay on the database's thread.

`heard_devstack.nx_store` patches nx-27017 and asyncio for the process it runs in, so the handler is driven in a
child process of its own, as the store's server would drive it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# A store's handler over `data_dir` (the child's first argument), and `run`, which sends it one command of database
# "heard" on the database's thread; the script that follows defines `main(data_dir, run)` and prints what it saw.
HANDLER = """
import asyncio, json, os, sys, time
from heard_devstack import nx_store
from nx_27017.handler import NeoSQLiteHandler

def command(body):
    return {"request_id": 1, "sections": [("body", {**body, "$db": "heard"})]}

async def drive(data_dir):
    handler = NeoSQLiteHandler(f"{data_dir}/heard.db", journal_mode="WAL", data_dir=data_dir)
    await main(data_dir, lambda method, body: asyncio.to_thread(getattr(handler, method), command(body)))
"""


def seen_by(script: str, *args: str) -> dict[str, Any]:
    """What `script` printed last, as JSON, run in a child process of its own (the store patches the process)."""
    child = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60, check=True
    )
    seen: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return seen


DRIVER = (
    HANDLER
    + """
async def main(data_dir, run):
    readers = lambda: sorted(nx_store._reader_threads)
    one = {"find": "items", "filter": {"_id": 1}, "limit": 1, "singleBatch": True}
    seen = {}
    await run("handle_insert", {"insert": "items", "documents": [{"_id": 1, "answers": 0}]})
    await run("handle_command", {"find": "items", "filter": {}})
    seen["after a cursor"] = readers()
    await run("handle_command", {**one, "txnNumber": 1, "lsid": {"id": "s"}, "autocommit": False})
    seen["after a read in a transaction"] = readers()
    for _ in range(3):
        await run("handle_command", {"update": "items", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"answers": 1}}}]})
        _, reply = await run("handle_command", one)
        seen.setdefault("read after each update", []).append(reply["cursor"]["firstBatch"][0]["answers"])
    seen["after single-batch reads"] = readers()
    print(json.dumps(seen))

asyncio.run(drive(sys.argv[1]))
"""
)


def test_a_single_batch_read_runs_beside_the_writes_and_sees_the_last_one(tmp_path: Path) -> None:
    seen = seen_by(DRIVER, str(tmp_path))

    assert seen["after a cursor"] == []
    assert seen["after a read in a transaction"] == []
    assert seen["read after each update"] == [1, 2, 3]
    assert seen["after single-batch reads"] == ["heard"]


COPIES = """
import copy, json
from collections import OrderedDict
from datetime import UTC, datetime
from bson import ObjectId
from heard_devstack import nx_store

shared = [1]
document = {"at": datetime(2026, 12, 2, tzinfo=UTC), "id": ObjectId(), "history": [{"events": ["a"]}],
            "ordered": OrderedDict(b=1, a=2)}
copied = copy.deepcopy(document)
copied["history"][0]["events"].append("b")
print(json.dumps({
    "the store's own": copy.deepcopy is nx_store._document_copy,
    "equal": copied["at"] == document["at"] and copied["id"] == document["id"],
    "original untouched": document["history"] == [{"events": ["a"]}],
    "ordered kept": type(copied["ordered"]).__name__,
    "other objects as before": copy.deepcopy({1: [2]}, {}) == {1: [2]} and copy.deepcopy(shared) == shared,
}))
"""


def test_documents_are_copied_fast_and_completely() -> None:
    """The store copies a document's dicts and lists itself and hands anything else to the original deepcopy."""
    seen = seen_by(COPIES)

    assert seen == {
        "the store's own": True,
        "equal": True,
        "original untouched": True,
        "ordered kept": "OrderedDict",
        "other objects as before": True,
    }


LOG_AND_DROP = (
    HANDLER
    + """
async def main(data_dir, run):
    read = {"find": "items", "filter": {"_id": 1}, "limit": 1, "singleBatch": True}
    size = lambda: os.path.getsize(f"{data_dir}/heard.db")
    seen = {}
    await run("handle_insert", {"insert": "items", "documents": [{"_id": 1, "v": "before"}]})
    seen["read before the drop"] = (await run("handle_command", read))[1]["cursor"]["firstBatch"]
    await run("handle_command", {"dropDatabase": 1})
    await run("handle_insert", {"insert": "items", "documents": [{"_id": 1, "v": "after"}]})
    seen["read after the drop"] = (await run("handle_command", read))[1]["cursor"]["firstBatch"]
    # 12 MB: three times the log's size at which SQLite would checkpoint inside the commit
    await run("handle_insert", {"insert": "items", "documents": [{"_id": n, "x": "x" * 4000} for n in range(2, 3002)]})
    seen["file after the insert"] = size()
    time.sleep(nx_store.CHECKPOINT_SECONDS * 2.5)
    seen["file a moment later"] = size()
    print(json.dumps(seen))

asyncio.run(drive(sys.argv[1]))
"""
)


def test_the_log_is_checkpointed_beside_the_writes_and_a_dropped_database_is_not_read_again(tmp_path: Path) -> None:
    seen = seen_by(LOG_AND_DROP, str(tmp_path))

    assert seen["read before the drop"] == [{"_id": 1, "v": "before"}]
    assert seen["read after the drop"] == [{"_id": 1, "v": "after"}]
    assert seen["file after the insert"] < 1_000_000  # the commit left the log alone
    assert seen["file a moment later"] > 12_000_000  # the checkpointer copied it in
