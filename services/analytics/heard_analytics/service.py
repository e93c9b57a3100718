"""Analytics' service layer: consumes events into the read model, and answers for the public figures.

Requests never read items and never wait for suppression: figures come from the last suppressed copy of each
year's tables, which a background publisher keeps current. Several times a second it reads the cell documents
changed since its last look (those this process wrote, and those other replicas wrote), suppresses again, off the
event loop, each year whose counters changed and that someone reads (only the measures whose counts changed), and
swaps the new copy in. An event is "visible" once a copy made after it was applied is being served; that delay is
the freshness the gauge reports.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.asynchronous.collection import AsyncCollection

from heard_analytics import cube, figures, privacy, records
from heard_analytics.areas import Areas
from heard_analytics.facts import KINDS
from heard_analytics.projection import Freshness, ReadModel
from heard_shared.events import CloudEvent, utc_now
from heard_shared.logs import get_logger
from heard_shared.mongo import Document

log = get_logger(__name__)

# Another replica stamps `updated_ms` with its own clock when it writes a cell, and its write lands a little later:
# re-reading this far back covers both.
REFRESH_OVERLAP = timedelta(seconds=5)
LEVELS = 5
# The freshness promise: an event shows in the public figures within this many seconds (an SLO bucket boundary).
FRESHNESS_OBJECTIVE_SECONDS = 2.0
# How often the publisher looks for changed cells. After a pass that suppressed something it waits at least as
# long as the pass took, so that under a steady stream it never holds more than half a core.
PUBLISH_INTERVAL_SECONDS = 0.25
# "Overdue right now" is counted again at most this often, however many read it.
OVERDUE_MAX_AGE_SECONDS = 1.0
# What the item-level file reads of an item's facts.
ITEM_FIELDS = dict.fromkeys(
    (
        "submitted_at",
        "month",
        "precinct",
        "neighbourhood",
        "kind",
        "category",
        "negative",
        "acknowledged_at",
        "answered_at",
        "reached",
        "closed_at",
        "resolution",
        "last_reopened_at",
    ),
    1,
)


class SuppressionProcess:
    """Decides suppression in a process of its own.

    The attack is numpy, but the Python between its calls holds the interpreter lock: in a thread of the service,
    at 200 events/s, the event loop spent 18% of its busy time waiting for that lock in socket writes (py-spy). A
    worker process shares no lock; it is started with the publisher and stopped with it. Until it is started (the
    tests drive a service without its publisher) or after it died, suppression runs in the calling thread.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def start(self) -> None:
        # Spawned, not forked: a fork of a process with running threads can inherit a lock held mid-way.
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __call__(
        self, tables: privacy.LinkedTables, threshold: int
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        """Blocks the calling thread (never the event loop) until the worker has decided."""
        pool = self._pool
        if pool is not None:
            try:
                return pool.submit(privacy.LinkedTables.suppress, tables, threshold).result()
            except BrokenProcessPool:
                log.warning("the suppression process died; starting another")
                self.stop()
                self.start()
        return tables.suppress(threshold)


class AnalyticsService:
    def __init__(
        self,
        *,
        items: AsyncCollection[Document],
        cells: AsyncCollection[Document],
        open_items: AsyncCollection[Document],
        rounds: AsyncCollection[Document],
        areas: Areas,
        rules: privacy.PrivacyRules,
        registry: CollectorRegistry,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.items = items
        self.cells = cells
        self.open_items = open_items
        self.areas = areas
        self.rules = rules
        self.clock = clock
        self.model = ReadModel(items=items, cells=cells, open_items=open_items, rounds=rounds, areas=areas, clock=clock)
        self.index = cube.CellIndex(areas, rules)
        self.suppression = SuppressionProcess()
        self.freshness = Freshness()
        self._places, self._kinds = cube.place_axis(areas), cube.kind_axis()
        self._views: dict[figures.Filters, tuple[cube.PublicYear, list[figures.Table]]] = {}
        self._overdue: tuple[float, npt.NDArray[np.int64], npt.NDArray[np.int8]] | None = None
        self._watermark: datetime | None = None
        # Held while the cell index changes and while a year is suppressed from it.
        self._lock = asyncio.Lock()
        # The suppressed copy served for each year someone has read (the publisher keeps these current).
        self._public: dict[int, cube.PublicYear] = {}
        self.events_total = Counter(
            "heard_analytics_events_total",
            "Feedback events applied to the read model, by type.",
            ["type"],
            registry=registry,
        )
        self.publish_seconds = Histogram(
            "heard_analytics_publish_seconds",
            "Time to suppress one year's tables again after its counters changed.",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
        )
        self.visible_seconds = Histogram(
            "heard_analytics_event_visible_seconds",
            "Time from an event's creation to its effect being visible in the public figures.",
            registry=registry,
            buckets=(0.1, 0.25, 0.5, 1, FRESHNESS_OBJECTIVE_SECONDS, 5, 10, 30, 60, 300),
        )
        lag = Gauge(
            "heard_analytics_freshness_lag_seconds",
            "How far the public figures lag behind the events: the age of the oldest event being applied, else "
            "the lag of the last one applied (for a minute), else 0.",
            registry=registry,
        )
        lag.set_function(self.freshness.lag_seconds)

    async def start(self) -> None:
        await self.model.ensure_indexes()
        await self.model.finish_pending()

    # -- events ----------------------------------------------------------------------------------

    async def on_event(self, event: CloudEvent[Any]) -> None:
        key = f"{event.source}|{event.id}"
        self.freshness.started(key, event.time)
        try:
            changed = await self.model.apply(event)
        except BaseException:
            self.freshness.abandoned(key)
            raise
        if changed:
            self.events_total.labels(event.type).inc()
            self.freshness.applied(key)  # visible once the publisher serves a copy that includes it
        else:
            self.freshness.abandoned(key)  # nothing to show: a redelivery, or a fact already known

    async def run_publisher(self) -> None:
        """Background task: keeps the served copies current (see the module docstring)."""
        self.suppression.start()
        try:
            while True:
                started = time.perf_counter()
                try:
                    await self.publish_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # MongoDB away, or a bug in one pass: keep serving the last copy, try again
                    log.exception("publishing the public figures failed")
                took = time.perf_counter() - started
                await asyncio.sleep(max(PUBLISH_INTERVAL_SECONDS - took, took))
        finally:
            self.suppression.stop()

    async def publish_once(self) -> bool:
        """One pass: read changed cells, suppress again the years read whose counters changed. True if it did work."""
        pass_started = self.freshness.clock()
        async with self._lock:
            await self._refresh()
            # The years someone read, and the latest, which the page opens on.
            years = {*self._public, *self.index.known_years()[-1:]}
            changed = [
                year
                for year in sorted(years)
                if (tables := self.index.years.get(year)) is not None
                and (year not in self._public or tables.version != self._public[year].version)
            ]
            for year in changed:
                await self._suppress(year)
        for lag in self.freshness.published(pass_started):
            self.visible_seconds.observe(lag)
        return bool(changed)

    async def _suppress(self, year: int) -> cube.PublicYear:
        """Suppresses a year again and serves the result. Called holding the lock, so the tables hold still."""
        started = time.perf_counter()
        # Off the event loop (copies in a thread, deciding in the suppression process), so the consumer and
        # requests keep going. Only the measures whose counts changed since the copy served are decided again.
        served = self._public[year] = await asyncio.to_thread(
            self.index.published, year, self._public.get(year), self.suppression
        )
        # Views of the copy replaced would keep it alive (megabytes each).
        self._views = {f: views for f, views in self._views.items() if f.year != year}
        self.publish_seconds.observe(time.perf_counter() - started)
        return served

    # -- reading ---------------------------------------------------------------------------------

    async def _refresh(self) -> None:
        """Takes in the cells changed since the last look: those this process wrote, by id, and those another
        replica wrote (stamped with its `writer`) in the last moments."""
        started = self.clock()
        own, self.model.written = self.model.written, set()
        try:
            if self._watermark is None:
                cells = [cell async for cell in self.cells.find({}, {"applied_tokens": 0})]
            else:
                since = int((self._watermark - REFRESH_OVERLAP).timestamp() * 1000)
                others = {"updated_ms": {"$gte": since}, "writer": {"$ne": self.model.writer}}
                cells = [cell async for cell in self.cells.find(others, {"applied_tokens": 0})]
                if own:
                    query = {"_id": {"$in": sorted(own)}}
                    cells += [cell async for cell in self.cells.find(query, {"applied_tokens": 0})]
        except BaseException:
            self.model.written |= own  # read them next time
            raise
        self.index.update(cells)
        self._watermark = started

    async def published(self, year: int) -> cube.PublicYear:
        """The served copy of a year; only the first request for a year waits for its suppression."""
        if (served := self._public.get(year)) is not None:
            return served
        async with self._lock:
            if (served := self._public.get(year)) is not None:
                return served
            if self._watermark is None:
                await self._refresh()
            return await self._suppress(year)

    def default_year(self) -> int:
        years = self.index.known_years()
        return years[-1] if years else self.clock().year

    async def report(self, filters: figures.Filters) -> figures.Report:
        year = await self.published(filters.year)
        # Made once per served copy and filter: a page read by many between two copies costs one.
        cached = self._views.get(filters)
        if cached is None or cached[0] is not year:
            cached = self._views[filters] = (year, figures.year_views(year, filters, self.areas))
        return figures.report(
            cached[1],
            filters,
            overdue=await self.overdue(filters),
            open_items=await self.open_total(),
            generated_at=self.clock(),
        )

    async def open_total(self) -> privacy.Published:
        """Items still open, citywide and across all years: the freshness line's second figure."""
        total = sum(tables.total("open") for tables in self.index.years.values())
        return privacy.count(total, privacy.SHOWN if total >= self.rules.threshold else privacy.PRIMARY, self.rules)

    async def overdue(self, filters: figures.Filters) -> list[privacy.Published]:
        """Overdue now by level for the filter's area and kind, suppressed over the whole level × area × kind table
        (counted again when the last count is older than OVERDUE_MAX_AGE_SECONDS)."""
        if self._overdue is None or time.monotonic() - self._overdue[0] > OVERDUE_MAX_AGE_SECONDS:
            self._overdue = (time.monotonic(), *await self._count_overdue())
        _, table, status = self._overdue
        p, k = self._places.index[filters.area], self._kinds.index[filters.kind]
        return [privacy.count(int(table[level, p, k]), int(status[level, p, k]), self.rules) for level in range(LEVELS)]

    async def _count_overdue(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]:
        places, kinds_axis = self._places, self._kinds
        place_leaf, kind_index = places.index, kinds_axis.index
        leaves = np.zeros((LEVELS, places.leaves, len(KINDS)), dtype=np.int64)
        async for entry in self.open_items.find(
            {"due": {"$lt": int(self.clock().timestamp() * 1000)}},
            {"precinct": 1, "neighbourhood": 1, "kind": 1, "level": 1},
        ):
            place = place_leaf.get(cube.place_key(str(entry["precinct"]), str(entry["neighbourhood"])))
            kind = kind_index.get(str(entry["kind"]))
            if place is None or kind is None or place >= places.leaves:
                continue
            leaves[min(int(entry.get("level", 0)), LEVELS - 1), place, kind] += 1
        level_totals = np.vstack([np.eye(LEVELS, dtype=np.int64), np.ones((1, LEVELS), dtype=np.int64)])
        table = np.einsum("lpk,Ll,Pp,Kk->LPK", leaves, level_totals, places.matrix(), kinds_axis.matrix())
        groups = [[(LEVELS, tuple(range(LEVELS)))], list(places.groups), list(kinds_axis.groups)]
        return table, await asyncio.to_thread(privacy.suppress, table, groups, self.rules.threshold)

    async def item_release(self, year: int, *, key: bytes) -> records.Release:
        """A year's item-level rows, generalised against the figures served for that year (records.py)."""
        public = await self.published(year)
        items = records.YearItems(year)
        query: Document = {"month": {"$gte": f"{year:04d}-01", "$lte": f"{year:04d}-12"}}
        async for item in self.items.find(query, ITEM_FIELDS):
            if "submitted_at" in item:
                items.add(item)
        return await asyncio.to_thread(records.release, items, public, now=self.clock(), key=key)
