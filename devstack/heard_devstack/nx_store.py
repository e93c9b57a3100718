"""Runs nx-27017, the local MongoDB-wire store, with its update operators fixed for the values Heard stores.

nx-27017 0.8.1 (over neosqlite 1.17.2) applies an update in one of two ways, both inside the lock it holds
per database for the whole command, so either is atomic against other commands: with SQL JSON functions,
or by reading the document, applying the operators in Python and writing it back. The SQL way stores a
date given to `$set` as text, and a document pushed into an array (with every document already in it) as
a JSON string, and cannot remove documents by value; the Python way keeps every type but ignores dotted
paths in `$unset` and `$inc`. So an update is applied in two steps within the one command: `$set` and the
array operators the Python way, then every other operator (`$unset`, `$inc`, ...) the SQL way.

Its filters are fixed where they differ from MongoDB on what Heard asks:
- `$or`/`$and` beside other fields were translated to SQL without parentheses, so `{"_id": a, "$or": [x, y]}`
  became `_id = a AND x OR y`: an update meant for one document could change another (measured: an audit head
  and routing decisions written to the wrong items). Each logical condition is now one parenthesised term.
- null and missing: `{f: None}` inside `$or`/`$and` (evaluated in Python when a sibling such as `$in` has no SQL
  form) matched only a missing field, not a null one; `$exists` in SQL took a null value for a missing field;
  `$ne: None` matched missing fields in both tiers. Now, as on MongoDB, `{f: None}` matches null or missing,
  `$exists` asks only whether the field is there, and `$ne: None` needs a value that is not null.
A filter SQL cannot answer whole (a top-level `$or`, or a date comparison) was answered by reading every document
of the collection into Python: `{"_id": a, "$or": [...]}` read all of intake's items to update one, and a date
term sent the whole filter through SQL functions no index serves. Such a filter now reads only the documents
that its SQL-translatable top-level terms select (an `_id` or an indexed field), then applies the whole filter in
Python as before; with no such term it still reads everything.
Each write command runs in one SQLite transaction. nx-27017 leaves SQLite in autocommit, so an `insert_many`
or an `update_many` of N documents was N commits: measured 2.1 ms a document against 1.0 ms in one transaction
(1,500-byte routing cases, five indexes). The command already holds the database's lock from start to end, so
the only change readers can see is that a multi-document write appears at once, which MongoDB also allows.

Each database's commands run on a thread of their own, in arrival order. nx-27017 hands each command to
`asyncio.to_thread`, whose default pool has min(32, cores + 4) threads: six here. When six commands queued behind
one database's lock (a busy service's connection pool does that), every other command waited for a thread too,
drivers' heartbeats included; after 5 s the drivers marked the server unknown and paused their pools, so every
service failed at once (measured in the scale bench: intake answering 503 and the routing scheduler's heartbeat
130 s stale at 20 submissions/s).
A read of one batch (`find_one`, a `find` with `limit: 1` or `singleBatch`, `count`) runs instead on a second thread
per database, through a twin handler with SQLite connections of its own: in WAL mode it reads the last committed
state without queueing behind the database's writes (a write is committed before its reply, so a client reads its
own writes). In the scale bench at 100,000 items this took the tracking-code GET from p50 78 ms / p99 295 ms to
p50 24 ms / p99 165 ms, and submission → routed from p50 249 ms to 91 ms (one run each, same hour).

An insert, and an update applied the Python way, first copy the document with `copy.deepcopy`, which records every
object it copies in case one appears twice: 13-23% of the store's time while routing worked off a backlog. A
document decoded from BSON is a tree of dicts and lists with no object in it twice, so dicts and lists are copied
directly and anything else goes to `copy.deepcopy` as before (5 × 500 inserts of a 1,500-byte case through the
wire: 0.249 → 0.198-0.218 ms each). An insert's documents are not copied at all: they were decoded for that command
alone, and nx-27017's ObjectId and bytes conversions rebuilt them twice already (6 × 500 routing cases through the
wire, median of 3 alternating rounds: 0.215 → 0.167 ms each).

The write-ahead log is checkpointed by a thread of its own, not inside the commit that fills it, and a dropped
database's file is let go by every connection to it first (the reading twin went on reading the deleted file).

tests/storage checks the result through the wire, as it would any MongoDB.

    python -m heard_devstack.nx_store --data-dir DIR --host 127.0.0.1 -p PORT [nx-27017's other options]
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import datetime
import functools
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from bson.int64 import Int64
from neosqlite import query_operators
from neosqlite.collection.cursor import Cursor
from neosqlite.collection.datetime_query_processor import DateTimeQueryProcessor
from neosqlite.collection.jsonb_support import json_data_column
from neosqlite.collection.query_helper import update_operations
from neosqlite.collection.query_helper._sql_query_builder import SqlQueryBuilderMixin
from neosqlite.collection.query_helper._sql_updates import SqlUpdatesMixin
from neosqlite.collection.query_helper.query_builder import QueryBuilderMixin
from neosqlite.collection.query_helper.update_operations import UpdateOperationsMixin
from neosqlite.collection.sql_translator_unified import SQLClauseBuilder, SQLOperatorTranslator
from neosqlite.connection import Connection
from neosqlite.sql_utils import quote_table_name
from nx_27017 import handler as nx_handler
from nx_27017.nx_27017 import main

T = TypeVar("T")

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


# -- copies ------------------------------------------------------------------------------------------------------

_deepcopy = copy.deepcopy
# BSON's 64-bit integers (epoch milliseconds, say) decode as Int64, an int.
_IMMUTABLE = frozenset({str, int, Int64, float, bool, type(None), bytes, datetime.datetime})
# True while an insert command runs: its documents were decoded from the command for it alone (and rebuilt since by
# nx-27017's ObjectId and bytes conversions), so the copy neosqlite makes of each protects nothing.
_inserting = contextvars.ContextVar("inserting", default=False)


def _document_copy(x: T, memo: dict[int, Any] | None = None, _nil: Any = None) -> T:
    """`copy.deepcopy` for what a store copies: documents decoded from BSON, trees of plain dicts and lists."""
    if memo is not None or type(x) is not dict:
        return _deepcopy(x, memo)
    if _inserting.get():
        return x
    return cast(T, _tree_copy(x))


def _tree_copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _tree_copy(item) for key, item in value.items()}
    if kind is list:
        return [_tree_copy(item) for item in value]
    if kind in _IMMUTABLE:
        return value
    return _deepcopy(value)


def _without_copies(
    handle: Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply],
) -> Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply]:
    """`handle` (the insert command's handler) with its documents stored as decoded, not copied first."""

    def handle_uncopied(self: nx_handler.NeoSQLiteHandler, msg: dict[str, Any]) -> Reply:
        token = _inserting.set(True)
        try:
            return handle(self, msg)
        finally:
            _inserting.reset(token)

    return handle_uncopied


# -- transactions ------------------------------------------------------------------------------------------------

WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify", "findandmodify"})
Reply = tuple[int, Any]


def _command_body(msg: dict[str, Any]) -> dict[str, Any]:
    """The command document of a wire message (OP_MSG's body section); empty if it has none."""
    return next((doc for kind, doc in msg.get("sections", ()) if kind == "body" and isinstance(doc, dict)), {})


def _in_one_transaction(
    handle: Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply],
) -> Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply]:
    """`handle` (a command handler, unlocked) with a write command wrapped in BEGIN ... COMMIT."""

    def handle_in_transaction(self: nx_handler.NeoSQLiteHandler, msg: dict[str, Any]) -> Reply:
        body = _command_body(msg)
        command = next(iter(body), None)
        # A client-side transaction (autocommit false) is nx-27017's own business.
        if command not in WRITE_COMMANDS or body.get("autocommit") is False:
            return handle(self, msg)
        connection = self.get_database(nx_handler._msg_db_name(msg)).db
        if connection.in_transaction:
            return handle(self, msg)
        # IMMEDIATE: another process writing the file (the scale bench's copies) makes this one wait its turn
        # instead of failing the command with "database is locked" when a read would upgrade to a write.
        connection.execute("BEGIN IMMEDIATE")
        try:
            reply = handle(self, msg)
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
        connection.commit()  # a no-op if the handler committed on its own
        return reply

    return handle_in_transaction


# -- threads -----------------------------------------------------------------------------------------------------

# One thread per database, so a database's commands run in the order they arrived and never take another
# database's thread: its lock would serialise them anyway, and a lock is not fair (a thread pool racing for it
# lets some commands wait for ever under load).
_database_threads: dict[str, ThreadPoolExecutor] = {}


# A command slower than this (waiting for its database's thread plus running) is written to stderr as one JSON line.
SLOW_MS = float(os.environ["HEARD_NX_SLOW_MS"]) if os.environ.get("HEARD_NX_SLOW_MS") else None


# A read of one batch (`find_one`, a `count`) runs on a second thread per database, over a second SQLite connection:
# in WAL mode it reads the last committed state without waiting for the writer, so a resident's tracking-code GET no
# longer queues behind every write its service sent before it. It leaves no cursor behind, so no later `getMore` has
# to find it on the other connection. Anything else keeps the database's one thread, in arrival order.
_reader_threads: dict[str, ThreadPoolExecutor] = {}
_readers: dict[int, nx_handler.NeoSQLiteHandler] = {}


def _single_batch_read(msg: Any) -> bool:
    body = _command_body(msg)
    command = next(iter(body), None)
    if "txnNumber" in body:  # inside a transaction: only the writer's connection sees its uncommitted writes
        return False
    if command == "find":
        return body.get("singleBatch") is True or body.get("limit") == 1
    return command == "count"


def _reader_of(handler: nx_handler.NeoSQLiteHandler) -> nx_handler.NeoSQLiteHandler:
    """A twin of `handler` with connections of its own (made with the same arguments)."""
    reader = _readers.get(id(handler))
    if reader is None:
        args, kwargs = _handler_arguments[id(handler)]
        reader = _readers[id(handler)] = nx_handler.NeoSQLiteHandler(*args, **kwargs)
    return reader


async def _to_command_thread(func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`asyncio.to_thread` on the thread of the database the command names."""
    database = nx_handler._msg_db_name(args[0]) if args and isinstance(args[0], dict) else "admin"
    handler = getattr(func, "__self__", None)
    threads = _database_threads
    if (
        isinstance(handler, nx_handler.NeoSQLiteHandler)
        and id(handler) in _handler_arguments
        and getattr(func, "__func__", None) is nx_handler.NeoSQLiteHandler.handle_command
        and _single_batch_read(args[0])
    ):
        func = _reader_of(handler).handle_command
        threads = _reader_threads
    pool = threads.get(database)
    if pool is None:
        suffix = "-read" if threads is _reader_threads else ""
        pool = threads[database] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"nx-{database}{suffix}")
    call = functools.partial(contextvars.copy_context().run, func, *args, **kwargs)
    if SLOW_MS is None:
        return await asyncio.get_running_loop().run_in_executor(pool, call)
    queued = time.perf_counter()
    started: list[float] = []

    def timed() -> T:
        started.append(time.perf_counter())
        return call()

    try:
        return await asyncio.get_running_loop().run_in_executor(pool, timed)
    finally:
        _log_if_slow(database, args[0] if args else None, queued, started)


def _shape(value: Any) -> Any:
    """A filter or update with its values left out, so a log line says what was asked, never about whom."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return [_shape(item) for item in value[:3]]
    return type(value).__name__


def _log_if_slow(database: str, msg: Any, queued: float, started: list[float]) -> None:
    ended = time.perf_counter()
    if (ended - queued) * 1000 < (SLOW_MS or 0):
        return
    sections = msg.get("sections", ()) if isinstance(msg, dict) else ()
    body: dict[str, Any] = {}
    for kind, doc in sections:  # a batch's statements may come as a document sequence beside the body
        if kind in ("body", "payload") and isinstance(doc, dict):
            body |= doc
    command = next(iter(body), "?")
    detail: dict[str, Any] = {key: _shape(body[key]) for key in ("filter", "query", "pipeline") if key in body}
    for statements in ("updates", "deletes"):
        if body.get(statements):
            detail[statements] = len(body[statements])
            detail["q"] = _shape(body[statements][0].get("q"))
    ran = ended - started[0] if started else 0.0
    line: dict[str, Any] = {
        # When it ended, so a log can be cut at a benchmark's phases.
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "db": database,
        "command": command,
        "collection": body.get(command),
        "wait_ms": round((ended - queued - ran) * 1000, 1),
        "run_ms": round(ran * 1000, 1),
        **detail,
    }
    print(json.dumps(line, default=str), file=sys.stderr, flush=True)


# -- the write-ahead log -----------------------------------------------------------------------------------------

# SQLite copies its write-ahead log into the database file (a checkpoint: page writes and an fsync) inside whichever
# commit takes the log past 1,000 pages, so every few batches of inserts one of them waited for it on its database's
# thread. Here no connection checkpoints as it commits: one thread checkpoints every database file once a second,
# PASSIVE, which waits for no reader and no writer. And each connection keeps 64 MiB of pages (SQLite's default is
# 2 MiB), room for a year's indexes. Routing cases inserted through the wire, 40 batches of 500 after 20,000:
# 0.201 → 0.160 ms each (median of 3 alternating rounds).
CHECKPOINT_SECONDS = 1.0
CACHE_KIB = 64 * 1024
WAL_LIMIT_BYTES = 64 * 1024 * 1024  # what a log grown in a burst is cut back to once it has been copied in


class _Checkpointed:
    """One database file the checkpointer looks after: its own connection, opened when first needed."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()  # the connection is used by the checkpointer and closed before a drop
        self.connection: sqlite3.Connection | None = None
        self.released = False

    def checkpoint(self) -> None:
        with self.lock:
            if self.released:
                return
            try:
                if self.connection is None:
                    # mode=rw: a file deleted since must not be created again, empty, by its checkpointer.
                    uri = f"file:{urllib.parse.quote(self.path)}?mode=rw"
                    self.connection = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                self.connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:  # not there (yet, or any more): tried again next time
                self._close()

    def release(self) -> None:
        """Closes the connection for good, so the file's own last connection can remove its log."""
        with self.lock:
            self.released = True
            self._close()

    def _close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


_checkpointed: dict[str, _Checkpointed] = {}
_checkpointed_lock = threading.Lock()


def _checkpoint_forever() -> None:
    while True:
        time.sleep(CHECKPOINT_SECONDS)
        with _checkpointed_lock:
            files = list(_checkpointed.values())
        for file in files:
            file.checkpoint()


def _checkpoint_in_background(path: str) -> None:
    with _checkpointed_lock:
        if not _checkpointed:
            threading.Thread(target=_checkpoint_forever, name="nx-checkpoints", daemon=True).start()
        if path not in _checkpointed:
            _checkpointed[path] = _Checkpointed(path)


def _stop_checkpointing(path: str) -> None:
    with _checkpointed_lock:
        file = _checkpointed.pop(path, None)
    if file is not None:
        file.release()


_configure_connection = Connection._configure_connection


def _configure_for_load(self: Connection) -> None:
    _configure_connection(self)
    self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    path = next((file for _, name, file in self.db.execute("PRAGMA database_list") if name == "main"), "")
    if path:  # a file, not memory
        self.db.execute("PRAGMA wal_autocheckpoint = 0")
        self.db.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
        _checkpoint_in_background(path)


# -- dropped databases -------------------------------------------------------------------------------------------

# nx-27017 drops a database by closing its connection and deleting the file. The reading twin and the checkpointer
# had connections of their own to it, so the twin went on answering `find_one` from the deleted file (measured:
# after `drop_database` and a new insert, `find_one` returned the dropped document), and a log left behind by a
# connection still open could be read into a new file of the same name. Both let go of the file first.


def _releasing_dropped(
    handle: Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply],
) -> Callable[[nx_handler.NeoSQLiteHandler, dict[str, Any]], Reply]:
    """`handle` (the command handler, inside the database's lock) with a dropped file's other connections closed."""

    def handle_releasing(self: nx_handler.NeoSQLiteHandler, msg: dict[str, Any]) -> Reply:
        body = _command_body(msg)
        command = next(iter(body), None)
        if command in ("dropDatabase", "dropdatabase") and self._mode == "files":
            target = body[command]
            database = nx_handler._msg_db_name(msg) if target in (1, None, "") else str(target)
            _stop_checkpointing(self._db_file(database))
            reader, thread = _readers.get(id(self)), _reader_threads.get(database)
            if reader is not None and thread is not None:  # closed on its own thread, between two reads
                thread.submit(_close_database, reader, database).result()
        return handle(self, msg)

    return handle_releasing


def _close_database(handler: nx_handler.NeoSQLiteHandler, database: str) -> None:
    with handler._lock_for(database), handler._dict_lock:
        handler._evict_db_locked(database)


# -- filters ---------------------------------------------------------------------------------------------------

_logical_condition = SQLClauseBuilder._build_logical_condition
_translate_operator = SQLOperatorTranslator.translate_operator
_operator_clause = SqlQueryBuilderMixin._build_operator_clause
_apply_query = QueryBuilderMixin._apply_query
_field_exists = query_operators._field_exists
_get_nested_field = query_operators._get_nested_field


def _build_logical_condition(
    self: SQLClauseBuilder, operator: str, conditions: list[dict[str, Any]], context: str = "direct"
) -> tuple[str | None, list[Any]]:
    sql, params = _logical_condition(self, operator, conditions, context)
    return (f"({sql})" if sql else sql), params


def _json_type(field_access: str) -> str | None:
    """`json_type(data, path)`: SQL NULL for a missing field, 'null' for a null one (None for a real column)."""
    if "extract(" not in field_access:
        return None
    return field_access.replace("jsonb_extract(", "json_type(").replace("json_extract(", "json_type(")


def _null_semantics(json_type: str, operator: str, value: Any) -> str | None:
    """The SQL for `$exists` and `$ne: None` on a JSON field, or None for any other operator."""
    if operator == "$exists" and isinstance(value, bool):
        return f"{json_type} IS {'NOT ' if value else ''}NULL"
    if operator == "$ne" and value is None:
        return f"({json_type} IS NOT NULL AND {json_type} != 'null')"
    return None


def _translate(
    self: SQLOperatorTranslator, field_access: str, operator: str, value: Any
) -> tuple[str | None, list[Any]]:
    json_type = _json_type(field_access)
    if json_type is not None and (sql := _null_semantics(json_type, operator, value)) is not None:
        return sql, []
    result: tuple[str | None, list[Any]] = _translate_operator(self, field_access, operator, value)
    return result


def _build_operator_clause(
    self: SqlQueryBuilderMixin, json_path: str, operators: dict[str, Any], *args: Any, **kwargs: Any
) -> tuple[str | None, list[Any]]:
    ours = [
        sql for op, value in operators.items() if (sql := _null_semantics(f"json_type(data, {json_path})", op, value))
    ]
    if not ours:
        result: tuple[str | None, list[Any]] = _operator_clause(self, json_path, operators, *args, **kwargs)
        return result
    rest = {op: value for op, value in operators.items() if _null_semantics("", op, value) is None}
    if not rest:
        return " AND ".join(ours), []
    sql, params = _operator_clause(self, json_path, rest, *args, **kwargs)
    return (None, []) if sql is None else (" AND ".join([*ours, sql]), params)


def _with_null_equality(query: dict[str, Any]) -> dict[str, Any]:
    """`{f: None}` as `{f: {"$eq": None}}`, which the Python tier already matches on null or missing."""
    if not any(value is None and not field.startswith("$") for field, value in query.items()):
        return query
    return {
        field: {"$eq": None} if value is None and not field.startswith("$") else value for field, value in query.items()
    }


def _python_apply_query(self: QueryBuilderMixin, query: dict[str, Any], document: dict[str, Any]) -> bool:
    return bool(_apply_query(self, _with_null_equality(query), document))


def _ne(field: str, value: Any, document: dict[str, Any]) -> bool:
    if value is None:
        return _field_exists(field, document) and _get_nested_field(field, document) is not None
    return bool(_python_ne(field, value, document))


_python_ne = query_operators._ne


# -- filters SQL cannot answer whole ----------------------------------------------------------------------------

_python_fallback = Cursor._handle_python_fallback
_datetime_sql_tier = DateTimeQueryProcessor._process_with_sql_tier


def _narrowing(
    helpers: QueryBuilderMixin, query: dict[str, Any], usable: Callable[[str, Any], bool]
) -> tuple[str, list[Any]] | None:
    """`WHERE ...` and its parameters for the top-level terms of `query` that SQL answers on its own (they are ANDed
    with the rest, so they select a superset of the matches), or None when there is none."""
    terms: dict[str, Any] = {}
    for field, value in query.items():
        if field.startswith("$") or not usable(field, value):
            continue
        built = helpers._build_simple_where_clause({field: value})
        if built is not None and not built[2]:  # no temporary tables to clean up
            terms[field] = value
    if not terms:
        return None
    built = helpers._build_simple_where_clause(terms)
    return None if built is None or built[2] or not built[0] else (built[0], built[1])


def _rows(collection: Any, where: str, params: list[Any], order: str = "", batch: int = 100) -> Iterator[Any]:
    jsonb = collection.query_engine.jsonb.jsonb_supported
    cursor = collection.db.execute(
        f"SELECT id, _id, {json_data_column(jsonb)} as data FROM {quote_table_name(collection.name)} {where}{order}",
        params,
    )
    try:
        while rows := cursor.fetchmany(batch):
            yield from rows
    finally:
        cursor.close()


def _handle_python_fallback(self: Cursor) -> Iterator[dict[str, Any]]:
    narrowing = None if self._min or self._max else _narrowing(self._query_helpers, self._filter, lambda *_: True)
    if narrowing is None:
        return _python_fallback(self)  # type: ignore[no-any-return]
    order = self._query_helpers._build_sort_clause(self._sort, self._collation)
    self._sql_handled_sort = bool(order)
    rows = _rows(self._collection, *narrowing, order, self._batch_size)
    return (doc for doc in self._load_documents(rows) if self._query_helpers._apply_query(self._filter, doc))


def _process_with_sql_tier(self: DateTimeQueryProcessor, query: dict[str, Any]) -> list[dict[str, Any]] | None:
    narrowing = _narrowing(
        self.helpers, query, lambda field, value: not self._contains_datetime_operations({field: value})
    )
    if narrowing is None:
        return _datetime_sql_tier(self, query)  # type: ignore[no-any-return]
    documents = (
        self.collection._load_with_stored_id(row[0], row[2], row[1]) for row in _rows(self.collection, *narrowing)
    )
    return [doc for doc in documents if self.helpers._apply_query(query, doc)]


# -- equality on a compound index's first field ------------------------------------------------------------------


def _field_leads_an_index(self: SqlQueryBuilderMixin, field: str) -> bool:
    """neosqlite leaves out its array-element match for an indexed field, so the equality stays an index lookup; but it
    recognises only an index whose last key is the field. SQLite serves an equality on a compound index's first key
    just as well (intake's audit chain: (feedback_id, seq)); without this every chain read scanned the whole table.
    Replaces neosqlite's check rather than calling it: one listing of the indexes per equality, not two."""
    key = field.replace(".", "_")
    first_key = f"idx_{self.collection.name}_{key}_"
    try:
        names = self.collection.list_indexes()
    except sqlite3.Error:  # as neosqlite's own check: no listing, no index
        return False
    return any(isinstance(name, str) and (name.endswith(f"_{key}") or name.startswith(first_key)) for name in names)


SqlUpdatesMixin._can_use_sql_updates = _can_use_sql_updates
UpdateOperationsMixin._internal_update = _internal_update
SQLClauseBuilder._build_logical_condition = _build_logical_condition
SQLOperatorTranslator.translate_operator = _translate
SqlQueryBuilderMixin._build_operator_clause = _build_operator_clause
QueryBuilderMixin._apply_query = _python_apply_query
query_operators._ne = _ne
Cursor._handle_python_fallback = _handle_python_fallback
DateTimeQueryProcessor._process_with_sql_tier = _process_with_sql_tier
SqlQueryBuilderMixin._field_has_index = _field_leads_an_index
_handler_init = nx_handler.NeoSQLiteHandler.__init__
_handler_arguments: dict[int, tuple[tuple[Any, ...], dict[str, Any]]] = {}


def _remember_arguments(self: nx_handler.NeoSQLiteHandler, *args: Any, **kwargs: Any) -> None:
    _handler_init(self, *args, **kwargs)
    if not _handler_arguments:  # the server's handler, made first; a reader twin is not twinned again
        _handler_arguments[id(self)] = (args, kwargs)


nx_handler.NeoSQLiteHandler.__init__ = _remember_arguments
# What an insert (which imports `deepcopy` as it runs) and the Python way of an update copy before they change it:
# 13-23% of the store's time in the hop benchmark went to `copy.deepcopy` (it tracks every object it copies).
copy.deepcopy = update_operations.deepcopy = _document_copy
# nx-27017's server calls `asyncio.to_thread` through the module; this process runs nothing else.
asyncio.to_thread = _to_command_thread
# Inside the handler's own per-database lock, which `_serialize` takes around the unwrapped function.
nx_handler.NeoSQLiteHandler.handle_insert = nx_handler._serialize(
    _without_copies(_in_one_transaction(nx_handler.NeoSQLiteHandler.handle_insert.__wrapped__))
)
nx_handler.NeoSQLiteHandler.handle_command = nx_handler._serialize(
    _releasing_dropped(_in_one_transaction(nx_handler.NeoSQLiteHandler.handle_command.__wrapped__))
)
Connection._configure_connection = _configure_for_load

if __name__ == "__main__":
    # Every command crosses threads twice (the server's event loop, the database's thread) and each SQLite call lets
    # go of the interpreter lock: at the default 5 ms a thread waiting to take it back often waits that long, several
    # times per command, behind another database's busy thread.
    sys.setswitchinterval(0.0005)
    main()
