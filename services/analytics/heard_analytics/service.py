"""Analytics' service layer: consumes events into the read model, and answers for the public figures.

Requests never read items: figures come from the process's copy of the cells (refreshed from the documents
changed since the last look, so a replica also sees what other replicas applied) and from the small list of open
items. A year's tables are suppressed again only when its counters changed, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pymongo.asynchronous.collection import AsyncCollection

from heard_analytics import cube, figures, privacy
from heard_analytics.areas import Areas
from heard_analytics.facts import KINDS
from heard_analytics.projection import Freshness, ReadModel
from heard_shared.events import CloudEvent, utc_now
from heard_shared.mongo import Document

# A replica stamps `updated_at` with its own clock; re-reading this far back covers clock skew between replicas.
REFRESH_OVERLAP = timedelta(seconds=5)
LEVELS = 5
# The freshness promise: an event shows in the public figures within this many seconds (an SLO bucket boundary).
FRESHNESS_OBJECTIVE_SECONDS = 2.0


class AnalyticsService:
    def __init__(
        self,
        *,
        items: AsyncCollection[Document],
        cells: AsyncCollection[Document],
        open_items: AsyncCollection[Document],
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
        self.model = ReadModel(items=items, cells=cells, open_items=open_items, areas=areas, clock=clock)
        self.index = cube.CellIndex(areas, rules)
        self.freshness = Freshness()
        self._watermark: datetime | None = None
        self._refresh_lock = asyncio.Lock()
        self._publish_locks: dict[int, asyncio.Lock] = {}
        self.events_total = Counter(
            "heard_analytics_events_total",
            "Feedback events applied to the read model, by type.",
            ["type"],
            registry=registry,
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
        lag = self.freshness.visible(key)
        if changed:
            self.events_total.labels(event.type).inc()
            self.visible_seconds.observe(lag)

    # -- reading ---------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Brings the process's copy of the cells up to date; concurrent callers share one round trip."""
        if self._refresh_lock.locked():
            async with self._refresh_lock:
                return
        async with self._refresh_lock:
            started = self.clock()
            query: Document = (
                {} if self._watermark is None else {"updated_at": {"$gte": self._watermark - REFRESH_OVERLAP}}
            )
            changed = [cell async for cell in self.cells.find(query, {"applied_tokens": 0})]
            self.index.update(changed)
            self._watermark = started

    async def published(self, year: int) -> cube.PublicYear:
        await self.refresh()
        lock = self._publish_locks.setdefault(year, asyncio.Lock())
        async with lock:
            tables = self.index.years.get(year)
            version = tables.version if tables else 0
            cached = self.index.cached(year, version)
            if cached is not None:
                return cached
            # Suppression is CPU work: run it off the event loop so the consumer and other requests keep going.
            return await asyncio.to_thread(self.index.published, year)

    def default_year(self) -> int:
        years = self.index.known_years()
        return years[-1] if years else self.clock().year

    async def report(self, filters: figures.Filters) -> figures.Report:
        year = await self.published(filters.year)
        return figures.report(
            year,
            filters,
            self.areas,
            overdue=await self.overdue(filters),
            open_items=await self.open_total(),
            generated_at=self.clock(),
        )

    async def open_total(self) -> privacy.Published:
        """Items still open, citywide and across all years: the freshness line's second figure."""
        total = sum(int(tables.counts[cube.MEASURE_INDEX["open"]].sum()) for tables in self.index.years.values())
        return privacy.count(total, privacy.SHOWN if total >= self.rules.threshold else privacy.PRIMARY, self.rules)

    async def overdue(self, filters: figures.Filters) -> list[privacy.Published]:
        """Overdue now by level for the filter's area and kind, suppressed over the whole level × area × kind table."""
        places, kinds_axis = cube.place_axis(self.areas), cube.kind_axis()
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
        status = await asyncio.to_thread(privacy.suppress, table, groups, self.rules.threshold)
        p, k = places.index[filters.area], kinds_axis.index[filters.kind]
        return [privacy.count(int(table[level, p, k]), int(status[level, p, k]), self.rules) for level in range(LEVELS)]

    async def item_rows(self, *, year: int | None = None) -> AsyncIterator[Document]:
        """Item-level rows for the bulk download, in id order, streamed."""
        query: Document = {"submitted_at": {"$exists": True}}
        if year is not None:
            query["month"] = {"$gte": f"{year:04d}-01", "$lte": f"{year:04d}-12"}
        async for item in self.items.find(query, {"applied": 0, "pending": 0}).sort("_id", 1):
            yield item
