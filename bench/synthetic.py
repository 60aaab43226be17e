"""A synthetic warehouse for the marts measurement: the real layout and schemas, ~10M rows.

Vectorized with numpy and pyarrow, one day at a time (so memory stays at one day's worth),
written through the product's own ``DayWriter`` (row groups, compression, publishing), so the
files look like the pipeline's. Cardinalities are those of a real estate: a handful of
regions and zones, ~5,000 hosts, a dozen applications, a few dozen scripts, ~1,000 tickets a
day of a few hundred instances in 1-5 batches, and a few hundred message patterns whose
numbers, addresses, paths and ids vary per row (what ``failure_messages`` has to mask).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.lake.day_writer import DayWriter
from pipelines.transform.schemas import (
    ATTRIBUTES,
    EXECUTION_INSTANCES,
    ORDER_BATCHES,
    SCRIPT_ORDERS,
)

ZONES = {
    "cn-north-4": ("cn-north-4a", "cn-north-4b", "cn-north-4c"),
    "cn-east-3": ("cn-east-3a", "cn-east-3b", "cn-east-3c"),
    "ap-southeast-1": ("ap-southeast-1a", "ap-southeast-1b"),
    "la-south-2": ("la-south-2a", "la-south-2b"),
}
APPLICATIONS = ("billing", "search", "orders", "auth", "cdn", "etl", "ml", "web")
STATUSES = ("FINISHED", "ABNORMAL", "ROLLBACKED", "CANCELED", "PROCESSING", "READY")
STATUS_P = (0.86, 0.06, 0.01, 0.04, 0.02, 0.01)
FINISHED, ABNORMAL, ROLLBACKED, CANCELED, PROCESSING, READY = range(6)
#: (prefix, value, middle, value, suffix, wordings): a message with up to two varying values
ERROR_TEMPLATES = (
    ("connect to ", "ip", ":", "n", " failed: Connection refused", 60),
    ("No space left on device: write ", "path", " (", "n", " bytes)", 50),
    ("java.lang.OutOfMemoryError: Java heap space at 0x", "hex", "", "", "", 40),
    ("command exited with code ", "n", " after ", "n", " ms", 60),
    ("Agent ", "uuid", " is offline", "", "", 30),
    ("timeout after ", "n", "s waiting for ", "url", "", 40),
    ("permission denied: ", "path", "", "", "", 30),
)
SUCCESS_TEMPLATES = (
    ("script finished in ", "n", " ms", "", "", 4),
    ("ok: ", "n", " files changed on ", "ip", "", 4),
)
CANCEL_TEMPLATES = (("canceled by operator ", "n", "", "", "", 2),)
VALUE_KINDS = ("", "n", "ip", "path", "hex", "uuid", "url")
DAY_MS = 86_400_000
HOSTS = 5_000
ROWS_PER_TICKET = 330


@dataclass(frozen=True, kw_only=True)
class Patterns:
    """Message templates as columns: pieces to ``take`` and value kinds to ``choose``."""

    prefix: pa.Array
    kind1: pa.Array
    middle: pa.Array
    kind2: pa.Array
    suffix: pa.Array
    #: patterns [0, errors) are failures, [errors, cancels) successes, the rest cancellations
    errors: int
    cancels: int

    @classmethod
    def build(cls) -> Patterns:
        rows = []
        for templates in (ERROR_TEMPLATES, SUCCESS_TEMPLATES, CANCEL_TEMPLATES):
            for prefix, kind1, middle, kind2, suffix, wordings in templates:
                for w in range(wordings):
                    stage = f" (stage {chr(97 + w % 26)})" if w else ""
                    rows.append((f"[step {w % 7}] {prefix}", kind1, middle, kind2, suffix + stage))
        errors = sum(t[-1] for t in ERROR_TEMPLATES)
        cancels = errors + sum(t[-1] for t in SUCCESS_TEMPLATES)
        columns = list(zip(*rows, strict=True))
        kinds = [[VALUE_KINDS.index(k) for k in columns[i]] for i in (1, 3)]
        return cls(
            prefix=_strings(list(columns[0])),
            kind1=pa.array(kinds[0], type=pa.int8()),
            middle=_strings(list(columns[2])),
            kind2=pa.array(kinds[1], type=pa.int8()),
            suffix=_strings(list(columns[4])),
            errors=errors,
            cancels=cancels,
        )


@dataclass(frozen=True, kw_only=True)
class Vocabulary:
    """The fixed dimension values, as Arrow arrays to ``take`` from."""

    hosts: pa.Table
    scripts: pa.Array
    script_uuids: pa.Array
    creators: pa.Array
    patterns: Patterns


def _strings(values: list[str | None]) -> pa.Array:
    return pa.array(values, type=pa.string())


def vocabulary(rng: np.random.Generator, *, hosts: int = HOSTS) -> Vocabulary:
    zones = [(region, zone) for region, zs in ZONES.items() for zone in zs]
    zone_of = rng.integers(0, len(zones), hosts)
    attributes = [
        None if h % 3 == 0 else [("owner", f"team-{h % 17}"), ("env", "prod")][: h % 3]
        for h in range(hosts)
    ]
    table = pa.table(
        {
            "resource_id": _strings([f"ecs-{h:08x}-{h * 7919 % 65536:04x}" for h in range(hosts)]),
            "provider": _strings(["ECS"] * hosts),
            "resource_type": _strings(["CLOUDSERVER"] * hosts),
            "agent_sn": _strings([f"sn-{h * 2654435761 % 2**32:08x}" for h in range(hosts)]),
            "agent_status": _strings(
                ["OFFLINE" if h % 97 == 0 else "ONLINE" for h in range(hosts)]
            ),
            "host_name": _strings([f"host-{h:05d}" for h in range(hosts)]),
            "fixed_ip": _strings([f"192.168.{h // 250}.{h % 250 + 1}" for h in range(hosts)]),
            "floating_ip": _strings(
                [f"100.64.{h // 250}.{h % 250 + 1}" if h % 4 == 0 else None for h in range(hosts)]
            ),
            "zone_id": _strings([zones[z][1] for z in zone_of]),
            "application": _strings(
                [APPLICATIONS[i] for i in rng.integers(0, len(APPLICATIONS), hosts)]
            ),
            "group_name": _strings([f"group-{i}" for i in rng.integers(0, 30, hosts)]),
            "region_id": _strings([zones[z][0] for z in zone_of]),
            "project_id": _strings([f"{i:032x}" for i in rng.integers(1, 9, hosts)]),
            "custom_attributes": pa.array(attributes, type=ATTRIBUTES),
        }
    )
    return Vocabulary(
        hosts=table,
        scripts=_strings([f"script_{i:02d}" for i in range(40)]),
        script_uuids=_strings([f"SC{i:024d}" for i in range(40)]),
        creators=_strings([f"user{i}" for i in range(20)]),
        patterns=Patterns.build(),
    )


def _digits(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _values(rng: np.random.Generator, n: int) -> list[pa.Array]:
    """One array per ``VALUE_KINDS`` entry: what a placeholder of that kind becomes."""
    empty = pa.array(np.full(n, ""), type=pa.string())
    return [
        empty,
        _digits(rng.integers(0, 100_000, n)),
        pc.binary_join_element_wise(
            "10.0.", _digits(rng.integers(0, 255, n)), ".", _digits(rng.integers(1, 255, n)), ""
        ),
        pc.binary_join_element_wise("/var/lib/app/", _digits(rng.integers(0, 1000, n)), ".log", ""),
        _digits(rng.integers(2**32, 2**40, n)),
        pc.binary_join_element_wise(
            "5f0c8d2e-1a2b-4c3d-8e9f-",
            pc.utf8_lpad(_digits(rng.integers(0, 10**12, n)), 12, "0"),
            "",
        ),
        pc.binary_join_element_wise(
            "https://repo.example.com/pkg/", _digits(rng.integers(0, 500, n)), ""
        ),
    ]


def _messages(rng: np.random.Generator, patterns: Patterns, status: np.ndarray) -> pa.Array:
    n = len(status)
    total = len(patterns.prefix)
    pick = np.select(
        [status == ABNORMAL, status == CANCELED],
        [rng.integers(0, patterns.errors, n), rng.integers(patterns.cancels, total, n)],
        rng.integers(patterns.errors, patterns.cancels, n),
    )
    index = pa.array(pick)
    first = pc.choose(pc.take(patterns.kind1, index), *_values(rng, n))
    second = pc.choose(pc.take(patterns.kind2, index), *_values(rng, n))
    message = pc.binary_join_element_wise(
        pc.take(patterns.prefix, index),
        first,
        pc.take(patterns.middle, index),
        second,
        pc.take(patterns.suffix, index),
        "",
    )
    unfinished = pa.array((status == PROCESSING) | (status == READY))
    return pc.if_else(unfinished, pa.scalar(None, pa.string()), message)


def _timestamps(ms: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(ms, type=pa.int64(), mask=null).cast(pa.timestamp("ms", tz="UTC"))


def day_tables(
    day: dt.date, rows: int, vocab: Vocabulary, rng: np.random.Generator, first_id: int
) -> dict[str, pa.Table]:
    """One day of the three tables, ``rows`` instances of about ``rows / 330`` tickets."""
    tickets = max(1, rows // ROWS_PER_TICKET)
    sizes = rng.multinomial(rows, rng.dirichlet(np.full(tickets, 2.0)))
    ticket_of = np.repeat(np.arange(tickets), sizes)
    position = np.arange(rows) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    batch_count = rng.integers(1, 6, tickets)
    per_batch = np.maximum(1, np.ceil(sizes / batch_count)).astype(np.int64)
    batch_index = (position // per_batch[ticket_of] + 1).astype(np.int32)

    day_ms = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    ticket_created = day_ms + np.sort(rng.integers(0, DAY_MS, tickets))
    # 26 characters, like the API's: SCT + day + ticket number + a few hex digits
    uuids = _strings([f"SCT{day:%Y%m%d}{t:06d}{t * 40503 % 2**36:09x}" for t in range(tickets)])
    status = rng.choice(len(STATUSES), rows, p=STATUS_P)
    created = ticket_created[ticket_of] + position * 250 + rng.integers(0, 1000, rows)
    costs = rng.lognormal(10.0, 1.0, rows).astype(np.int64)
    finished = created + costs
    no_start = status == READY
    no_end = no_start | (status == PROCESSING)
    host = pa.array(rng.integers(0, len(vocab.hosts), rows))
    hosts = vocab.hosts.take(host)

    instance = {
        "execute_uuid": pc.take(uuids, pa.array(ticket_of)),
        "batch_index": pa.array(batch_index),
        "instance_id": pa.array(first_id + np.arange(rows), type=pa.int64()),
        "status": pc.take(_strings(list(STATUSES)), pa.array(status)),
        "message": _messages(rng, vocab.patterns, status),
        "created_at": _timestamps(created, no_start),
        "finished_at": _timestamps(finished, no_end),
        "execute_costs": pa.array(costs, mask=no_end),
        "duration_ms": pa.array(finished - created, mask=no_end),
    }
    for name in hosts.column_names:
        instance[name] = hosts.column(name).combine_chunks()

    script = rng.integers(0, len(vocab.scripts), tickets)
    totals = sizes.astype(np.int64)
    order_costs = rng.lognormal(12.0, 1.0, tickets).astype(np.int64)
    ticket_status = rng.choice(["FINISHED", "ABNORMAL", "CANCELED"], tickets, p=[0.8, 0.15, 0.05])
    orders = {
        "execute_uuid": uuids,
        "order_id": pa.array(first_id // 100 + np.arange(tickets), type=pa.int64()),
        "order_name": _strings([f"order {t}" for t in range(tickets)]),
        "creator": pc.take(vocab.creators, pa.array(rng.integers(0, len(vocab.creators), tickets))),
        "status": pa.array(ticket_status, type=pa.string()),
        "created_at": _timestamps(ticket_created, np.zeros(tickets, bool)),
        "finished_at": _timestamps(ticket_created + order_costs, np.zeros(tickets, bool)),
        "execute_costs": pa.array(order_costs),
        "duration_ms": pa.array(order_costs),
        "region_ids": pa.array(rng.choice(list(ZONES), tickets), type=pa.string()),
        "script_uuid": pc.take(vocab.script_uuids, pa.array(script)),
        "script_name": pc.take(vocab.scripts, pa.array(script)),
        "script_version_name": _strings([f"v1.{t % 5}.0" for t in range(tickets)]),
        "execute_user": _strings(["root"] * tickets),
        "timeout_s": pa.array(np.full(tickets, 300), type=pa.int64()),
        "success_rate": pa.array(np.full(tickets, 95.0)),
        "batch_count": pa.array(batch_count, type=pa.int32()),
        "total_instances": pa.array(totals),
    }
    pairs, counts = np.unique(ticket_of.astype(np.int64) * 32 + batch_index, return_counts=True)
    batches = {
        "execute_uuid": pc.take(uuids, pa.array(pairs // 32)),
        "batch_index": pa.array((pairs % 32).astype(np.int32)),
        "total_instances": pa.array(counts.astype(np.int64)),
        "rotation_strategy": _strings(["CONTINUE"] * len(pairs)),
        "instances_ingested": pa.array(counts.astype(np.int64)),
    }
    return {
        "execution_instances": _table(instance, EXECUTION_INSTANCES),
        "script_orders": _table(orders, SCRIPT_ORDERS),
        "order_batches": _table(batches, ORDER_BATCHES),
    }


def _table(columns: dict[str, pa.Array], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays([columns[n] for n in schema.names], schema=schema)


def write_warehouse(root: str, *, days: int, rows_per_day: int, seed: int = 4) -> dict[str, int]:
    """``days`` days ending 2026-11-25 under ``root``; returns rows per table."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(rng)
    last = dt.date(2026, 11, 25)
    totals = {"execution_instances": 0, "script_orders": 0, "order_batches": 0}
    for d in range(days):
        day = last - dt.timedelta(days=days - 1 - d)
        tables = day_tables(day, rows_per_day, vocab, rng, first_id=1_000 + d * rows_per_day * 2)
        with DayWriter(root=root, day=day) as writer:
            for name, table in tables.items():
                writer.write(name, table)
                totals[name] += table.num_rows
            writer.commit()
    return totals
