"""Retry decisions and delays (pure), and the RequestGate.

The gate's arithmetic (pacing intervals, cuts, recovery) runs on a fake clock and sleep
(``FakeTime``), so it is exact. What needs real concurrency (tasks sharing a pause, the
concurrency cap) runs with real, short asyncio sleeps, fast rates and loose bounds: they show
the behaviour, not the scheduler's precision, so a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from pipelines.coc import errors
from pipelines.coc.gate import RequestGate
from pipelines.coc.retry import RetryPolicy, backoff_s, is_retriable, parse_retry_after
from tests.support.fake_time import FakeTime

# -- parse_retry_after ------------------------------------------------------------------------

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("-0.5", 0.0),
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("7 seconds", None),
        ("Mon, 99 Foo 2024 99:99:99 GMT", None),
        ("Mon, 06 May 2024 07:08:39 GMT", 30.0),
        ("Monday, 06-May-24 07:08:19 GMT", 10.0),  # RFC 850, still allowed by RFC 9110
        ("Mon, 06 May 2024 07:07:09 GMT", 0.0),  # in the past: no wait, not negative
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_http_date_against_the_clock() -> None:
    header = format_datetime(datetime.fromtimestamp(time.time() + 60, UTC), usegmt=True)
    assert 58.0 <= parse_retry_after(header) <= 60.0


# -- backoff_s ----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_within_an_exponential_ceiling() -> None:
    policy = RetryPolicy(base_s=0.25, cap_s=20.0)
    rng = random.Random(1234)
    for attempt in range(1, 12):
        ceiling = min(policy.cap_s, policy.base_s * 2 ** (attempt - 1))
        samples = [backoff_s(attempt, policy, rng) for _ in range(400)]
        assert all(0.0 <= s <= ceiling for s in samples)
        # full jitter: the whole range [0, ceiling] is used, not just its upper half
        assert min(samples) < 0.1 * ceiling
        assert max(samples) > 0.9 * ceiling


def test_backoff_is_capped_even_for_huge_attempt_numbers() -> None:
    policy = RetryPolicy(base_s=1.0, cap_s=3.0)
    rng = random.Random(5)
    for attempt in (10, 64, 1_100, 10**6):
        assert 0.0 <= backoff_s(attempt, policy, rng) <= 3.0


def test_backoff_uses_the_module_random_without_an_rng() -> None:
    assert 0.0 <= backoff_s(3, RetryPolicy(base_s=0.1, cap_s=5.0)) <= 0.4


# -- is_retriable -------------------------------------------------------------------------------


def _api(status: int) -> errors.ApiError:
    return errors.api_error_class(status)("x", status=status)


@pytest.mark.parametrize(
    ("exc", "retriable"),
    [
        (_api(429), True),
        (_api(500), True),
        (_api(502), True),
        (_api(503), True),
        (_api(504), True),
        (_api(400), False),
        (_api(401), False),
        (_api(403), False),
        (_api(404), False),
        (_api(409), False),
        (_api(501), False),
        (_api(505), False),
        (errors.TransportError("reset"), True),
        (errors.ResponseError("garbled"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
        (errors.PagingError("stuck"), False),
        (errors.RequestValidationError("bad"), False),
        (errors.ConfigError("bad"), False),
        (ValueError("x"), False),
        (KeyboardInterrupt(), False),
    ],
    ids=lambda v: (
        type(v).__name__ + (f"-{v.status}" if hasattr(v, "status") else "")
        if isinstance(v, BaseException)
        else str(v)
    ),
)
def test_is_retriable(exc: BaseException, retriable: bool) -> None:
    assert is_retriable(exc) is retriable


def test_status_classes() -> None:
    assert isinstance(_api(429), errors.RateLimitedError)
    assert isinstance(_api(502), errors.ServerError)
    assert type(_api(409)) is errors.ApiError


# -- RequestGate ---------------------------------------------------------------------------------


def test_gate_paces_at_max_rps() -> None:
    async def main() -> tuple[int, float]:
        gate = RequestGate(max_rps=200, concurrency=20, adaptive=False)
        granted: list[float] = []
        start = time.monotonic()
        window = 0.3

        async def worker() -> None:
            while time.monotonic() - start < window:
                async with gate.slot():
                    granted.append(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(8)))
        in_window = sum(1 for t in granted if t - start <= window)
        return in_window, time.monotonic() - start

    in_window, elapsed = asyncio.run(main())
    # 200 rps for 0.3 s is 60 slots (+1 for the first, granted at once); unpaced it would be
    # thousands
    assert 25 <= in_window <= 75, in_window
    assert elapsed < 2.0


def test_gate_spaces_a_burst() -> None:
    async def main() -> float:
        gate = RequestGate(max_rps=200, concurrency=50, adaptive=True)

        async def one() -> None:
            async with gate.slot():
                pass

        start = time.monotonic()
        await asyncio.gather(*(one() for _ in range(41)))
        assert gate.rate == 200  # no throttle: adaptive mode stays at the cap
        return time.monotonic() - start

    elapsed = asyncio.run(main())
    assert 0.15 <= elapsed < 2.0  # 40 intervals of 5 ms = 0.2 s


def test_gate_caps_concurrency() -> None:
    async def main() -> tuple[int, int]:
        gate = RequestGate(max_rps=None, concurrency=3)
        in_flight = peak = done = 0

        async def one() -> None:
            nonlocal in_flight, peak, done
            async with gate.slot():
                in_flight += 1
                peak = max(peak, in_flight)
                await asyncio.sleep(0.005)
                in_flight -= 1
                done += 1

        await asyncio.gather(*(one() for _ in range(20)))
        return peak, done

    peak, done = asyncio.run(main())
    assert peak == 3 and done == 20


def test_unpaced_gate_does_not_wait() -> None:
    async def main() -> float:
        gate = RequestGate(max_rps=None, concurrency=8)
        start = time.monotonic()
        for _ in range(500):
            async with gate.slot():
                pass
        return time.monotonic() - start

    assert asyncio.run(main()) < 0.5


@pytest.mark.parametrize("max_rps", [None, 200.0])
def test_throttle_pauses_everyone(max_rps: float | None) -> None:
    async def main() -> tuple[float, list[float]]:
        gate = RequestGate(max_rps=max_rps, concurrency=10, adaptive=False)
        async with gate.slot():
            pass
        throttled_at = time.monotonic()
        gate.throttle(0.15)
        granted: list[float] = []

        async def one() -> None:
            async with gate.slot():
                granted.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(5)))
        return throttled_at, granted

    throttled_at, granted = asyncio.run(main())
    assert len(granted) == 5
    assert all(t - throttled_at >= 0.13 for t in granted)  # no task slipped through the pause
    assert max(granted) - throttled_at < 1.5


def test_non_adaptive_throttle_keeps_the_rate() -> None:
    async def main() -> None:
        gate = RequestGate(max_rps=50, concurrency=2, adaptive=False)
        gate.throttle(None)
        assert gate.rate == 50 and gate.throttled == 1

    asyncio.run(main())


def _fake_gate(fake: FakeTime, **options: Any) -> RequestGate:
    return RequestGate(clock=fake.clock, sleep=fake.sleep, **options)


async def _take_slot(gate: RequestGate) -> None:
    """One request's turn: where a paced gate also recovers its rate."""
    async with gate.slot():
        pass


def test_paced_slots_sleep_one_interval_each() -> None:
    async def main() -> list[float]:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=200, concurrency=4, adaptive=False)
        for _ in range(10):
            await _take_slot(gate)
        return fake.sleeps

    # the first slot at once, then every 5 ms: the pacing is in the sleeps, not measured
    assert asyncio.run(main()) == pytest.approx([0.005] * 9)


def test_adaptive_throttle_lowers_the_rate_and_recovers_toward_max_rps() -> None:
    async def main() -> None:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=100, concurrency=4, adaptive=True)
        gate.throttle(None)
        first = gate.rate
        assert first is not None and first < 100
        gate.throttle(None)  # the same congestion event: one cut only
        assert gate.rate == first
        fake.advance(2.0)  # a later 429 is a new signal
        gate.throttle(None)
        assert gate.rate is not None and gate.rate < first
        assert gate.throttled == 3

        # additive increase with time since the last throttle, never above max_rps
        low = gate.rate
        fake.advance(10)
        await _take_slot(gate)
        assert low < gate.rate < 100
        fake.advance(10_000)
        await _take_slot(gate)
        assert gate.rate == 100

        for _ in range(100):
            fake.advance(2.0)
            gate.throttle(None)
        assert gate.rate == pytest.approx(1.0)  # the floor: never paced to a stop

    asyncio.run(main())


def test_adaptive_recovery_waits_for_the_pause_to_end() -> None:
    async def main() -> None:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=100, concurrency=4, adaptive=True)
        gate.throttle(30.0)
        cut = gate.rate
        fake.advance(20)  # still inside the Retry-After pause: the slot waits it out
        await _take_slot(gate)
        assert gate.rate == cut
        assert fake.sleeps == [pytest.approx(10.0)] and fake.now == gate.paused_until
        fake.advance(10)
        await _take_slot(gate)
        assert gate.rate is not None and gate.rate > cut

    asyncio.run(main())


def test_adaptive_throttle_without_a_cap_starts_pacing() -> None:
    async def main() -> None:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=None, concurrency=4, adaptive=True)
        assert gate.rate is None
        for _ in range(100):  # ~100 accepted/s for a second
            fake.advance(0.01)
            gate.accepted()
        gate.throttle(None)
        assert gate.rate is not None and 50 <= gate.rate <= 100  # just under what was accepted
        before = gate.rate
        fake.advance(60)
        await _take_slot(gate)
        assert gate.rate > before  # no ceiling: keeps creeping up

    asyncio.run(main())


def test_a_429_before_any_observation_only_pauses() -> None:
    async def main() -> None:
        gate = RequestGate(max_rps=None, concurrency=4, adaptive=True)
        async with gate.slot():
            pass
        gate.throttle(0.05)
        assert gate.rate is None  # no evidence of the server's rate: no pacing at 1/s
        started = time.monotonic()
        async with gate.slot():
            assert time.monotonic() - started >= 0.04  # but everyone waits the pause out

    asyncio.run(main())


def test_adaptive_throttle_pauses_at_least_one_interval() -> None:
    async def main() -> float:
        gate = RequestGate(max_rps=20, concurrency=4, adaptive=True)
        async with gate.slot():
            pass
        at = time.monotonic()
        gate.throttle(None)  # rate 15/s: the next slot is at least 1/15 s away
        async with gate.slot():
            return time.monotonic() - at

    assert asyncio.run(main()) >= 0.05


def test_a_first_429_in_a_burst_paces_at_the_accepted_rate_per_second() -> None:
    async def main() -> None:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=None, concurrency=16, adaptive=True)
        for _ in range(50):  # a gateway's full bucket, drained in a few milliseconds
            fake.advance(0.0001)
            gate.accepted()
        gate.throttle(1.0)
        # 50 answers are 50 in a second, not 50 in 5 ms: pacing starts just under 50/s
        assert gate.rate == pytest.approx(45.0)

    asyncio.run(main())


def test_after_a_cut_the_rate_climbs_back_fast_then_probes_slowly() -> None:
    async def main() -> None:
        fake = FakeTime()
        gate = _fake_gate(fake, max_rps=None, concurrency=4, adaptive=True)
        for _ in range(100):  # the server accepted 100 requests/s
            fake.advance(0.01)
            gate.accepted()
        gate.throttle(None)
        assert gate.rate == pytest.approx(90.0)
        start = fake.now
        fake.advance(2)  # fast: 5% a second, but no further than 95% of 100
        await _take_slot(gate)
        assert gate.rate == pytest.approx(95.0)
        fake.now = start + 12  # then 1% a second
        await _take_slot(gate)
        assert gate.rate == pytest.approx(95.0 * 1.1, rel=0.01)

    asyncio.run(main())
