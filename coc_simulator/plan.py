"""Planning the dataset: every ticket's creation time, script, batches, sizes, fate and ids.

Each UTC day is planned from its own ``random.Random`` (seeded by the dataset seed and the
day), then all tickets are ordered by creation and numbered: ``order_id`` and instance id
ranges increase with creation, and ``execute_uuid`` is ``SCT`` + the creation time + 9 hex
digits (26 characters). Instances themselves are drawn later, per ticket
(``execution.execute``).

Every day holds tickets created exactly at 00:00:00.000 and 23:59:59.999 UTC and at local
midnight in Asia/Shanghai (16:00 UTC) minus one, zero and plus one millisecond. The one at
00:00 has batches of 0, 1, 49, 50, 51 and 100 instances; the Shanghai ones pause, run with
non-contiguous batch indexes (1, 2, 4, ...), and get canceled; the one at 23:59:59.999
runs long, into the next day.
"""

from __future__ import annotations

import random

from coc_simulator import catalog
from coc_simulator.catalog import pick
from coc_simulator.model import (
    DAY_MS,
    ID_SPAN,
    MAX_MARKER,
    SHANGHAI_MIDNIGHT_MS,
    Batch,
    SimConfig,
    Ticket,
    from_ms,
)

FIRST_ORDER_ID = 100_000
FIRST_INSTANCE_ID = 1_000
BOUNDARY_SIZES = (0, 1, 49, 50, 51, 100)
SPECIAL_SIZES = (0, 1, 49, 50, 51, 99, 100, 101, 150, 200, 250, 300)
#: Ticket ids that only a client encoding every path segment survives.
HOSTILE_UUIDS = (
    "SCT/../../admin",
    "a?limit=1&marker=9",
    "frag#ment",
    "100%25sure",
    "..",
    "sp ace+plus",
    "工单-ünïcode/x",
)


def _batch_count(rng: random.Random) -> int:
    u = rng.random()
    return 1 if u < 0.3 else rng.randint(2, 5) if u < 0.8 else rng.randint(6, 20)


def _size(rng: random.Random, largest: int) -> int:
    if rng.random() < 0.25:
        return rng.choice([s for s in SPECIAL_SIZES if s <= largest])
    return int(largest * rng.random() ** 1.6)


_ROLES = (("run", 0.8), ("long", 0.05), ("cancel", 0.05), ("pause", 0.04), ("gaps", 0.06))
_RATES = ((100.0, 0.05), (95.0, 0.2), (90.0, 0.35), (80.0, 0.3), (50.0, 0.1))


def new_ticket(rng: random.Random, created: int, role: str, span: float, largest: int) -> Ticket:
    long = role == "long"
    script = catalog.LONG_SCRIPT if long else catalog.SCRIPTS[rng.randrange(len(catalog.SCRIPTS))]
    version = script.version_for(span, rng)
    if role == "sizes":
        indexes, sizes = list(range(1, 7)), [s for s in BOUNDARY_SIZES]
    else:
        count = rng.randint(1, 3) if long else _batch_count(rng)
        if role == "pause":
            count = max(count, 2)
        if role == "gaps":
            indexes = [1, 2, 4]
            if rng.random() < 0.5:
                indexes = sorted(rng.sample(range(1, 21), min(max(count, 2), 19)))
        else:
            indexes = list(range(1, count + 1))
        sizes = [rng.randint(1, 40) if long else _size(rng, largest) for _ in indexes]
    batches = [
        Batch(
            index=i,
            size=s,
            properties=None if rng.random() < 0.8 else '{"batch_rule":"BY_ZONE"}',
        )
        for i, s in zip(indexes, sizes, strict=True)
    ]
    fate = role if role in ("cancel", "pause") else "run"
    fate_at = rng.randrange(len(batches) - (1 if fate == "pause" else 0))
    if fate == "pause":
        batches[fate_at].rotation_strategy = "PAUSE"
    regions = sorted(rng.sample(list(catalog.REGIONS), 2 if rng.random() < 0.2 else 1))
    params = [
        {"param_name": name, "param_value": value, "param_order": n + 1}
        for n, (name, value) in enumerate(script.params)
    ]
    return Ticket(
        gmt_created=created,
        seed=rng.getrandbits(64),
        script=script,
        version=version,
        creator=catalog.CREATORS[rng.randrange(len(catalog.CREATORS))],
        order_name=None if rng.random() < 0.05 else f"{script.name}-{created // 1000}",
        regions=tuple(regions),
        success_rate=pick(rng, _RATES),
        timeout=script.timeout_s,
        script_params=None if rng.random() < 0.1 else params,
        batches=batches,
        fate=fate,
        fate_at=fate_at,
    )


def plan_day(config: SimConfig, day_start: int, span: float) -> list[Ticket]:
    rng = random.Random(f"{config.seed}:day:{day_start}")
    if not config.rollouts:
        span = 0.0  # every script keeps its first version
    shanghai = day_start + SHANGHAI_MIDNIGHT_MS
    boundary = (
        (day_start, "sizes"),
        (day_start + DAY_MS - 1, "long"),
        (shanghai - 1, "pause"),
        (shanghai, "gaps"),
        (shanghai + 1, "cancel"),
    )
    largest = config.max_batch_size
    tickets = [new_ticket(rng, at, role, span, largest) for at, role in boundary]
    extra = rng.randint(*config.tickets_per_day) - len(tickets)
    times = sorted(day_start + rng.randrange(DAY_MS) for _ in range(max(0, extra)))
    tickets += [new_ticket(rng, at, pick(rng, _ROLES), span, largest) for at in times]
    target = config.instances_per_day
    if target is not None:
        remaining = target
        for ticket in tickets:
            for batch in ticket.batches:
                batch.size = min(remaining, rng.randint(1, largest))
                remaining -= batch.size
        while remaining > 0:
            at = day_start + rng.randrange(DAY_MS)
            ticket = new_ticket(rng, at, pick(rng, _ROLES), span, largest)
            for batch in ticket.batches:
                batch.size = min(remaining, rng.randint(1, largest))
                remaining -= batch.size
            tickets.append(ticket)
    return tickets


def finish_plan(config: SimConfig, tickets: list[Ticket], hostile_day: int, anchor: int) -> None:
    """Order the tickets by creation and give them order ids, uuids and instance id ranges."""
    tickets.sort(key=lambda t: (t.gmt_created, t.seed))
    rng = random.Random(f"{config.seed}:ids")
    order_id, instance_id = FIRST_ORDER_ID, FIRST_INSTANCE_ID
    seen: set[str] = set()
    for ticket in tickets:
        order_id += rng.randint(1, 5)
        ticket.order_id = order_id
        stamp = from_ms(ticket.gmt_created).strftime("%Y%m%d%H%M%S")
        uuid = f"SCT{stamp}{rng.getrandbits(36):09x}"
        while uuid in seen:
            uuid = f"SCT{stamp}{rng.getrandbits(36):09x}"
        seen.add(uuid)
        ticket.execute_uuid = uuid
        for batch in ticket.batches:
            batch.id_base = instance_id
            instance_id += ID_SPAN * batch.size + rng.randint(1, 50)
    if instance_id > MAX_MARKER:
        raise ValueError("too many instances: ids would not fit the API's marker range")
    if config.hostile_uuids:
        edges = {hostile_day + off for off in (0, DAY_MS - 1)}
        edges |= {hostile_day + SHANGHAI_MIDNIGHT_MS + d for d in (-1, 0, 1)}
        chosen = [
            t
            for t in tickets
            if hostile_day <= t.gmt_created < min(hostile_day + DAY_MS, anchor)
            and t.gmt_created not in edges
        ]
        for ticket, uuid in zip(chosen, HOSTILE_UUIDS, strict=False):
            ticket.execute_uuid = uuid
