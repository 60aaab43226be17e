"""The simulator's seeded dataset and its truth: what each endpoint answers at a time ``now``.

``Dataset(SimConfig(...))`` plans every ticket of ``days`` UTC days up to and including the
day of ``config.now`` at once (``plan.py``), deterministically from the seed, and draws each
ticket's instances lazily on first use (``execution.py``). The data are fixed; what an
endpoint shows depends on ``now``: a ticket created after ``now`` does not exist, a ticket
still running shows PROCESSING with a null ``gmt_finished``, and its instances show READY
or PROCESSING until they finish. One ticket starts 20 minutes before ``config.now`` and is
still running then.

The truth methods are plain Python for tests: they return exactly the dicts the API wraps
in ``{"data": ...}``, built by the same code the HTTP app encodes.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, bisect_right
from datetime import UTC, date, datetime

from coc_simulator import catalog, onsets
from coc_simulator.execution import current_batch_position, execute
from coc_simulator.model import (
    DAY_MS,
    INSTANCE_STATUSES,
    MAX_MARKER,
    NEVER,
    PROCESSING,
    READY,
    SHANGHAI_MIDNIGHT_MS,
    Batch,
    Run,
    SimConfig,
    Ticket,
    from_ms,
    to_ms,
)
from coc_simulator.plan import HOSTILE_UUIDS, finish_plan, new_ticket, plan_day

__all__ = [
    "DAY_MS",
    "HOSTILE_UUIDS",
    "MAX_MARKER",
    "SHANGHAI_MIDNIGHT_MS",
    "Dataset",
    "SimConfig",
    "Ticket",
    "from_ms",
    "to_ms",
]


class Dataset:
    """Every ticket of the span, planned eagerly, executed lazily; plus the truth API.

    ``now`` arguments take a datetime or epoch milliseconds; None means ``anchor_ms``.
    """

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config = config or SimConfig()
        self.anchor_ms = to_ms(config.now) if config.now is not None else int(time.time() * 1000)
        today = self.anchor_ms - self.anchor_ms % DAY_MS
        self.day_starts = [today - (config.days - 1 - d) * DAY_MS for d in range(config.days)]
        self.hosts = catalog.build_hosts(config.hosts, random.Random(f"{config.seed}:hosts"))
        if config.drift:
            catalog.drift(self.hosts)
        self._offline = [h.offline for h in self.hosts]
        self._bad_zone = [h.zone_id == catalog.BAD_ZONE for h in self.hosts]
        by_region: dict[str, list[int]] = {}
        for n, host in enumerate(self.hosts):
            region = host.zone_id.rstrip("abcdefgh")
            by_region.setdefault(region, []).append(n)
        self._pools: dict[tuple[str, ...], list[int]] = {}
        self._by_region = by_region
        tickets: list[Ticket] = []
        for d, day_start in enumerate(self.day_starts):
            tickets += plan_day(config, day_start, d / max(1, config.days - 1))
        running_at = self.anchor_ms - 20 * 60_000
        if config.instances_per_day is None and running_at >= self.day_starts[0]:
            rng = random.Random(f"{config.seed}:running:{self.anchor_ms}")
            running = new_ticket(rng, running_at, "long", 1.0, config.max_batch_size)
            running.batches = [Batch(index=i, size=30) for i in (1, 2, 3)]
            running.fate = "run"
            tickets.append(running)
        _roll_out(config.onsets, tickets)
        hostile_day = self.day_starts[-2] if config.days >= 2 else self.day_starts[-1]
        finish_plan(config, tickets, hostile_day, self.anchor_ms)
        self.tickets = tickets
        self._by_uuid = {t.execute_uuid: t for t in tickets}
        self._created = [t.gmt_created for t in tickets]
        self._order_ids = [t.order_id for t in tickets]

    # -- lookup ----------------------------------------------------------------------------

    def now_ms(self, now: datetime | int | None) -> int:
        return self.anchor_ms if now is None else to_ms(now)

    def ticket(self, execute_uuid: str, *, now: datetime | int | None = None) -> Ticket | None:
        """The ticket if it exists at ``now`` (created at or before it)."""
        ticket = self._by_uuid.get(execute_uuid)
        if ticket is None or ticket.gmt_created > self.now_ms(now):
            return None
        return ticket

    def _need(self, ticket: Ticket | str, now: int) -> Ticket:
        found = ticket if isinstance(ticket, Ticket) else self.ticket(ticket, now=now)
        if found is None or found.gmt_created > now:
            raise KeyError(f"no ticket {ticket!r} at {now}")
        return found

    def run(self, ticket: Ticket) -> Run:
        """The ticket's execution, drawn on first use (deterministic, so races are harmless)."""
        run = ticket.run
        if run is None:
            pool = self._pools.get(ticket.regions)
            if pool is None:
                pool = [h for region in ticket.regions for h in self._by_region.get(region, [])]
                self._pools[ticket.regions] = pool = pool or list(range(len(self.hosts)))
            run = ticket.run = execute(
                ticket,
                pool,
                self._offline,
                self._bad_zone,
                host_extra=onsets.host_extra(self.config.onsets, ticket.gmt_created, self.hosts),
                message_extra=onsets.message_extra(self.config.onsets, ticket.gmt_created),
            )
        return run

    def day_window(self, day: date | str) -> tuple[int, int]:
        """[start, end) in epoch ms of a UTC calendar day."""
        if isinstance(day, str):
            day = date.fromisoformat(day)
        start = to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
        return start, start + DAY_MS

    def days(self) -> list[date]:
        return [from_ms(start).date() for start in self.day_starts]

    def query_orders(
        self,
        *,
        now: int,
        limit: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        marker: int | None = None,
        creator: str | None = None,
        status: str | None = None,
    ) -> tuple[int, list[Ticket]]:
        """The list endpoint: (total matching, one page by order_id after ``marker``).

        The window is inclusive on both ends, as a lax server's might be.
        """
        lo = 0 if start_ms is None else bisect_left(self._created, start_ms)
        last = now if end_ms is None else min(end_ms, now)
        hi = bisect_right(self._created, last)
        if hi <= lo:
            return 0, []
        if creator is None and status is None:
            first = lo if marker is None else bisect_right(self._order_ids, marker, lo, hi)
            return hi - lo, self.tickets[first : min(hi, first + limit)]
        matched = [
            t
            for t in self.tickets[lo:hi]
            if (creator is None or t.creator == creator)
            and (status is None or self.order_state(t, now)[0] == status)
        ]
        page = [t for t in matched if marker is None or t.order_id > marker][:limit]
        return len(matched), page

    # -- views: the dicts each endpoint wraps in {"data": ...} ----------------------------

    def order_state(self, ticket: Ticket, now: int) -> tuple[str, int | None]:
        """(status, gmt_finished) of a ticket at ``now``."""
        run = self.run(ticket)
        if now < run.settled_at:
            return "PROCESSING", None
        return run.status, run.end

    def order_record(self, ticket: Ticket | str, *, now: datetime | int | None = None) -> dict:
        now = self.now_ms(now)
        t = self._need(ticket, now)
        return {
            "order_id": t.order_id,
            "order_name": t.order_name,
            **self._ticket_fields(t, now),
            "properties": {"region_ids": t.region_ids},
        }

    def _ticket_fields(self, t: Ticket, now: int) -> dict:
        """What the list entry and the detail of a ticket share."""
        status, finished = self.order_state(t, now)
        return {
            "execute_uuid": t.execute_uuid,
            "gmt_created": t.gmt_created,
            "gmt_finished": finished,
            "execute_costs": None if finished is None else finished - t.gmt_created,
            "creator": t.creator,
            "status": status,
        }

    def detail(self, ticket: Ticket | str, *, now: datetime | int | None = None) -> dict:
        now = self.now_ms(now)
        t = self._need(ticket, now)
        current: int | str = t.batches[current_batch_position(self.run(t), now)].index
        drift = {}
        if self.config.drift:  # an undocumented field, and a number sent as a string
            current, drift = str(current), {"approval_id": f"APR-{t.order_id}"}
        return {
            **self._ticket_fields(t, now),
            **drift,
            "properties": {
                "script_uuid": t.script.uuid,
                "script_name": t.script.name,
                "script_version_uuid": t.version.uuid,
                "script_version_name": t.version.name,
                "current_execute_batch_index": current,
                "execute_param": {
                    "timeout": t.timeout,
                    "success_rate": t.success_rate,
                    "execute_user": t.script.execute_user,
                    "script_params": t.script_params,
                },
            },
        }

    def batch_list(self, ticket: Ticket | str, *, now: datetime | int | None = None) -> list[dict]:
        t = self._need(ticket, self.now_ms(now))
        return [
            {
                "batch_index": b.index,
                "total_instances": b.size,
                "rotation_strategy": b.rotation_strategy,
                "properties": b.properties,
            }
            for b in t.batches
        ]

    def instances(
        self,
        ticket: Ticket | str,
        batch_index: int,
        *,
        now: datetime | int | None = None,
        status: str | None = None,
    ) -> list[dict]:
        """Every instance of one batch at ``now``, in id order, optionally of one status."""
        now = self.now_ms(now)
        t = self._need(ticket, now)
        pos = t.batch_position(batch_index)
        if pos is None:
            raise KeyError(f"ticket {t.execute_uuid!r} has no batch {batch_index}")
        items = self.instance_items(t, pos, now)
        return [item for item in items if status is None or item["status"] == status]

    def instance_items(self, t: Ticket, pos: int, now: int) -> list[dict]:
        """The instance dicts of the batch at position ``pos`` (``target_instance`` shared)."""
        run = self.run(t)
        b = run.batches[pos]
        settled = now >= run.settled_at
        hosts, name, render = self.hosts, t.script.name, catalog.render_message
        ids, hs, starts, finishes, codes = b.ids, b.hosts, b.start, b.finish, b.status
        items = []
        for i in range(len(ids)):
            host = hosts[hs[i]]
            s, f = starts[i], finishes[i]
            if s != NEVER and (settled or f <= now):
                item = {
                    "id": ids[i],
                    "target_instance": host.target,
                    "gmt_created": s,
                    "gmt_finished": f,
                    "execute_costs": f - s,
                    "status": INSTANCE_STATUSES[codes[i]],
                    "message": render(b.kind[i], b.key[i], host, name),
                }
            else:
                started = s != NEVER and s <= now
                item = {
                    "id": ids[i],
                    "target_instance": host.target,
                    "gmt_created": s if started else None,
                    "gmt_finished": None,
                    "execute_costs": None,
                    "status": INSTANCE_STATUSES[PROCESSING if started else READY],
                    "message": None,
                }
            items.append(item)
        return items

    def statistics(self, ticket: Ticket | str, *, now: datetime | int | None = None) -> dict:
        now = self.now_ms(now)
        t = self._need(ticket, now)
        counts = [0] * len(INSTANCE_STATUSES)
        where: list[list[int]] = [[] for _ in INSTANCE_STATUSES]
        for pos, batch in enumerate(t.batches):
            for item in self.instance_items(t, pos, now):
                code = INSTANCE_STATUSES.index(item["status"])
                counts[code] += 1
                if not where[code] or where[code][-1] != batch.index:
                    where[code].append(batch.index)
        return {
            "total_instance": t.total_instances,
            "execute_statistics": [
                {"instance_status": name, "instance_count": counts[c], "batch_indexes": where[c]}
                for c, name in enumerate(INSTANCE_STATUSES)
                if counts[c]
            ],
        }

    # -- truth for tests -------------------------------------------------------------------

    def tickets_in_window(
        self, start_ms: int, end_ms: int, *, now: datetime | int | None = None
    ) -> list[Ticket]:
        """Tickets with ``start_ms <= gmt_created < end_ms`` that exist at ``now``."""
        last = min(end_ms - 1, self.now_ms(now))
        lo, hi = bisect_left(self._created, start_ms), bisect_right(self._created, last)
        return self.tickets[lo:hi]

    def orders(
        self, start_ms: int, end_ms: int, *, now: datetime | int | None = None
    ) -> list[dict]:
        """The list records of the tickets in [start_ms, end_ms) at ``now``, by order_id."""
        return [
            self.order_record(t, now=now) for t in self.tickets_in_window(start_ms, end_ms, now=now)
        ]

    def minimal_requests(
        self,
        start_ms: int,
        end_ms: int,
        *,
        list_limit: int,
        page_limit: int,
        now: datetime | int | None = None,
        query_end_ms: int | None = None,
    ) -> int:
        """The fewest requests that read the window [start_ms, end_ms) completely and see
        that each walk is done: list pages (total // list_limit + 1) + detail and batch list
        per ticket + n // page_limit + 1 per non-empty batch (a walk ends on a page that is
        not full, so a full last page is followed by an empty one). ``query_end_ms`` is the
        ``end_time`` the client sends (default ``end_ms - 1``; the server's window includes
        it)."""
        now = self.now_ms(now)
        query_end = end_ms - 1 if query_end_ms is None else query_end_ms
        listed, _ = self.query_orders(now=now, limit=0, start_ms=start_ms, end_ms=query_end)
        tickets = self.tickets_in_window(start_ms, end_ms, now=now)
        pages = sum(b.size // page_limit + 1 for t in tickets for b in t.batches if b.size)
        return listed // list_limit + 1 + 2 * len(tickets) + pages

    def instance_count(
        self, start_ms: int, end_ms: int, *, now: datetime | int | None = None
    ) -> int:
        """How many instances the tickets of the window hold (every status)."""
        return sum(t.total_instances for t in self.tickets_in_window(start_ms, end_ms, now=now))


def _roll_out(planted: tuple[onsets.Onset, ...], tickets: list[Ticket]) -> None:
    """Each ``VersionOnset``: the script's tickets from its day on run the new version."""
    for n, onset in enumerate(planted):
        if not isinstance(onset, onsets.VersionOnset):
            continue
        version = catalog.Version(uuid=9000 + n, name=onset.version, failure=onset.failure)
        start = onsets.onset_ms(onset)
        for ticket in tickets:
            if ticket.script.name == onset.script and ticket.gmt_created >= start:
                ticket.version = version
