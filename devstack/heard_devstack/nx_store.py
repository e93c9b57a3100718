"""Runs nx-27017, the local MongoDB-wire store, with its update operators fixed for the values Heard stores.

nx-27017 0.8.1 (over neosqlite 1.17.2) applies an update in one of two ways, both inside the lock it holds
per database for the whole command, so either is atomic against other commands: with SQL JSON functions,
or by reading the document, applying the operators in Python and writing it back. The SQL way stores a
date given to `$set` as text, and a document pushed into an array (with every document already in it) as
a JSON string, and cannot remove documents by value; the Python way keeps every type but ignores dotted
paths in `$unset` and `$inc`. So an update is applied in two steps within the one command: `$set` and the
array operators the Python way, then every other operator (`$unset`, `$inc`, ...) the SQL way.
tests/storage checks the result through the wire, as it would any MongoDB.

    python -m heard_devstack.nx_store --data-dir DIR --host 127.0.0.1 -p PORT [nx-27017's other options]
"""

from __future__ import annotations

from typing import Any

from neosqlite.collection.query_helper._sql_updates import SqlUpdatesMixin
from neosqlite.collection.query_helper.update_operations import UpdateOperationsMixin
from nx_27017.nx_27017 import main

PYTHON_WAY = frozenset({"$set", "$push", "$addToSet", "$pull", "$pullAll"})

_sql_tier = SqlUpdatesMixin._can_use_sql_updates
_update = UpdateOperationsMixin._internal_update


def _can_use_sql_updates(
    self: SqlUpdatesMixin, update_spec: dict[str, Any], doc_id: int, original_doc: dict[str, Any] | None = None
) -> bool:
    return PYTHON_WAY.isdisjoint(update_spec) and bool(_sql_tier(self, update_spec, doc_id, original_doc))


def _internal_update(
    self: UpdateOperationsMixin,
    doc_id: Any,
    update_spec: dict[str, Any],
    original_doc: dict[str, Any],
    array_filters: list[dict[str, Any]] | None = None,
    query_filter: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    python = {op: fields for op, fields in update_spec.items() if op in PYTHON_WAY}
    rest = {op: fields for op, fields in update_spec.items() if op not in PYTHON_WAY}
    if not python or not rest or array_filters:
        result: tuple[dict[str, Any], bool] = _update(
            self, doc_id, update_spec, original_doc, array_filters, query_filter
        )
        return result
    # The Python way first: it writes back the whole document as it read it, and a document as loaded keeps
    # every type, while one handed back by the SQL way has dates as text.
    document, changed = _update(self, doc_id, python, original_doc, None, query_filter)
    document, also_changed = _update(self, doc_id, rest, document, None, query_filter)
    return document, bool(changed or also_changed)


SqlUpdatesMixin._can_use_sql_updates = _can_use_sql_updates
UpdateOperationsMixin._internal_update = _internal_update

if __name__ == "__main__":
    main()
