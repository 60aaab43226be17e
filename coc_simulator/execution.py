"""How one ticket runs: its instances' ids, hosts, times and outcomes, drawn lazily per ticket.

A ticket's plan (batches and sizes, fate, script) is fixed when the dataset is built; the
instances are drawn from ``random.Random(ticket.seed)`` the first time anything asks, so
laziness never changes a value. The result is columnar (``array``/``bytearray``), a few
integers per instance, and the time-dependent view is derived from it:

- an instance that never starts (after a pause) is READY forever;
- before its start it is READY, between start and finish PROCESSING, then final;
- READY and PROCESSING instances have null ``gmt_created``/``gmt_finished`` as the case may
  be, and a null ``message`` and ``execute_costs`` until they finish.

Batches run one after the other. A batch whose failure share exceeds ``100 - success_rate``
stops the ticket (later instances CANCELED as skipped; half of such batches roll their
successful instances back to ROLLBACKED); a canceled ticket cancels what is still running;
a paused ticket stops after one batch and stays PAUSED.
"""

from __future__ import annotations

import random
from array import array

from coc_simulator import catalog
from coc_simulator.model import (
    ABNORMAL,
    CANCELED,
    FINISHED,
    ID_GAPS,
    NEVER,
    READY,
    ROLLBACKED,
    BatchRun,
    Run,
    Ticket,
)


def execute(
    ticket: Ticket,
    pool: list[int],
    offline: list[bool],
    bad_zone: list[bool],
    *,
    host_extra: dict[int, float] | None = None,
    message_extra: float = 0.0,
) -> Run:
    """Draw every instance of ``ticket`` from its seed. ``pool`` holds the host indexes of
    the ticket's regions; ``offline``/``bad_zone`` are per-host failure facts;
    ``host_extra`` and ``message_extra`` are what planted onsets add (``onsets.py``)."""
    rng = random.Random(ticket.seed)
    r = rng.random
    bits = rng.getrandbits
    total = sum(b.size for b in ticket.batches)
    if total <= len(pool):
        picks = rng.sample(pool, total)
    else:
        picks = [pool[int(r() * len(pool))] for _ in range(total)]
    script = ticket.script
    mean_ms = script.mean_s * 1000.0
    timeout_ms = ticket.timeout * 1000
    p_zone = catalog.BAD_ZONE_FAILURE
    p_version = ticket.version.failure
    p_base = script.base_failure
    tolerated = 100.0 - ticket.success_rate
    clock = ticket.gmt_created + 500 + int(r() * 2500)
    stopped_at: int | None = None
    stop_kind = catalog.SKIPPED
    paused_at: int | None = None
    canceled = False
    last_end = clock
    runs: list[BatchRun] = []
    pos = 0
    for bpos, batch in enumerate(ticket.batches):
        n = batch.size
        iid = batch.id_base
        ids: list[int] = []
        for _ in range(n):
            iid += ID_GAPS[bits(4)]
            ids.append(iid)
        hosts = picks[pos : pos + n]
        pos += n
        if stopped_at is not None or paused_at is not None:
            when = NEVER if stopped_at is None else stopped_at
            code = READY if stopped_at is None else CANCELED
            kind = catalog.NO_MESSAGE if stopped_at is None else stop_kind
            runs.append(
                BatchRun(
                    ids=array("q", ids),
                    hosts=array("i", hosts),
                    start=array("q", [when] * n),
                    finish=array("q", [when] * n),
                    status=bytearray([code] * n),
                    kind=bytearray([kind] * n),
                    key=array("q", [bits(62) for _ in range(n)]),
                    begin=NEVER,
                    end=when,
                )
            )
            continue
        begin = clock
        start: list[int] = []
        finish: list[int] = []
        status: list[int] = []
        kinds: list[int] = []
        keys: list[int] = []
        for h in hosts:
            s = begin + int(r() * 1500)
            u = r()
            a = catalog.OFFLINE_FAILURE if offline[h] else 0.0
            z = a + p_zone if bad_zone[h] else a
            if host_extra is not None:
                z += host_extra.get(h, 0.0)
            v = z + p_version
            w = v + message_extra
            if u < a:
                code, kind, dur = ABNORMAL, catalog.AGENT, 300 + int(r() * 5000)
            elif u < z:
                code, kind, dur = ABNORMAL, catalog.ZONE_KINDS[bits(1)], 500 + int(r() * 20000)
            elif u < v:
                code, kind = ABNORMAL, catalog.REGRESSION_KINDS[int(r() * 3)]
                dur = int(mean_ms * (0.2 + r()))
            elif u < w:
                code, kind, dur = ABNORMAL, catalog.EXPIRED, 1000 + int(r() * 4000)
            elif u < w + p_base:
                code, kind = ABNORMAL, catalog.BASE_KINDS[bits(2)]
                dur = timeout_ms + int(r() * 1000) if kind == catalog.TIMEOUT else 200 + bits(13)
            else:
                code = FINISHED
                kind = catalog.OK_LONG if u > 0.97 else catalog.OK_SHORT
                dur = int(mean_ms * (0.3 + 1.4 * r()))
            start.append(s)
            finish.append(s + dur)
            status.append(code)
            kinds.append(kind)
            keys.append(bits(62))
        end = max(finish) if n else begin
        fails = status.count(ABNORMAL)
        if ticket.fate == "cancel" and bpos == ticket.fate_at:
            cancel = begin + int((end - begin) * 0.8 * r())
            for i in range(n):
                if finish[i] > cancel:
                    status[i], kinds[i], finish[i] = CANCELED, catalog.CANCELED, cancel
                    start[i] = min(start[i], cancel)
            end = stopped_at = cancel
            stop_kind = catalog.CANCELED
            canceled = True
        elif n and fails * 100.0 > tolerated * n:
            if r() < 0.5:
                for i in range(n):
                    if status[i] == FINISHED:
                        status[i], kinds[i] = ROLLBACKED, catalog.ROLLBACK
                        finish[i] += 1000 + int(r() * 9000)
                end = max(finish)
            stopped_at = end + 200 + int(r() * 800)
        elif ticket.fate == "pause" and bpos == ticket.fate_at:
            paused_at = end + 100 + int(r() * 2000)
        runs.append(
            BatchRun(
                ids=array("q", ids),
                hosts=array("i", hosts),
                start=array("q", start),
                finish=array("q", finish),
                status=bytearray(status),
                kind=bytearray(kinds),
                key=array("q", keys),
                begin=begin,
                end=end,
            )
        )
        last_end = end
        clock = end + 200 + int(r() * 4800)
    if paused_at is not None:
        return Run(batches=runs, status="PAUSED", end=None, settled_at=paused_at)
    end = max(last_end, stopped_at or 0) + 100 + int(r() * 900)
    final = "CANCELED" if canceled else "ABNORMAL" if stopped_at is not None else "FINISHED"
    return Run(batches=runs, status=final, end=end, settled_at=end)


def current_batch_position(run: Run, now: int) -> int:
    """Position of the last batch that had begun by ``now`` (0 if none had)."""
    current = 0
    for pos, batch in enumerate(run.batches):
        if batch.begin != NEVER and batch.begin <= now:
            current = pos
    return current
