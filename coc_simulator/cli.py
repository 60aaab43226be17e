"""``coc-etl simulator`` (and ``python -m coc_simulator``): run the COC simulator.

    coc-etl simulator --port 8080 [--seed 7] [--days 14] [--now 2026-11-25T15:00:00Z]
                      [--ak AK --sk SK | --token T] [--rate-limit 50] [--error-rate 0.1] ...
                      [--no-rollouts] [--onset zone:cn-north-4b:2026-11-22:0.1] ...

Prints one line on stdout once it listens (``COC simulator listening on http://...``) and
a summary on stderr; never the secret key or the token.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from coc_simulator.app import Clock, SimulatorApp
from coc_simulator.data import Dataset
from coc_simulator.faults import Faults
from coc_simulator.model import SimConfig
from coc_simulator.onsets import Onset, parse_onset
from coc_simulator.server import READY_LINE, serve_forever


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _onset(text: str) -> Onset:
    try:
        return parse_onset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, got {text!r}") from None


def add_simulator_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Define the simulator's options on ``parser``."""
    add = parser.add_argument
    add("--port", type=int, default=0, help="TCP port (default 0: any free port)")
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    data = parser.add_argument_group("data")
    data.add_argument("--seed", type=int, default=7, help="dataset seed (default 7)")
    data.add_argument("--days", type=int, default=14, help="days up to the day of --now")
    data.add_argument(
        "--now",
        type=_instant,
        help="fix the simulated clock (ISO 8601, UTC if no offset); default: the real time",
    )
    data.add_argument(
        "--tickets-per-day",
        type=_range,
        default=(20, 40),
        metavar="LOW-HIGH",
        help="tickets created a day (default 20-40)",
    )
    data.add_argument("--max-batch-size", type=int, default=300, help="instances a batch at most")
    data.add_argument("--instances-per-day", type=int, help="exactly N instances a day")
    data.add_argument("--hostile-uuids", action="store_true", help="ids with / ? # %% ..")
    data.add_argument(
        "--drift", action="store_true", help="undocumented fields, a missing one, a changed type"
    )
    data.add_argument(
        "--warm",
        action="append",
        default=[],
        metavar="DAY",
        help="pre-render the pages of a UTC day (YYYY-MM-DD, or 'all') before listening",
    )
    data.add_argument("--cache-mb", type=int, default=512, help="rendered-page cache size")
    data.add_argument("--hosts", type=int, default=4000, help="hosts in the pool (default 4000)")
    shifts = parser.add_argument_group("failure shifts (what the failure_shifts mart finds)")
    shifts.add_argument(
        "--no-rollouts",
        action="store_true",
        help="keep every script on its first version (no built-in mid-span regression)",
    )
    shifts.add_argument(
        "--onset",
        type=_onset,
        action="append",
        default=[],
        metavar="SPEC",
        help="plant a failure onset: zone:ZONE:DAY:FAILURE, host:INDEX:DAY:FAILURE, "
        "version:SCRIPT@VERSION:DAY:FAILURE or message:DAY:FAILURE (repeatable)",
    )
    auth = parser.add_argument_group("authentication (default: none)")
    auth.add_argument("--ak", help="access key: verify SDK-HMAC-SHA256 signatures")
    auth.add_argument("--sk", help="secret key of --ak")
    auth.add_argument("--token", help="require this X-Auth-Token")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--rate-limit", type=float, metavar="RPS", help="429 above this rate")
    faults.add_argument("--rate-burst", type=float, help="token bucket size (default: RPS)")
    faults.add_argument("--no-retry-after", action="store_true", help="429 without Retry-After")
    faults.add_argument("--error-rate", type=_fraction, default=0.0, help="share of 5xx")
    faults.add_argument("--drop-rate", type=_fraction, default=0.0, help="share of cut answers")
    faults.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay before every answer (default 0)"
    )
    faults.add_argument("--page-clamp", type=int, metavar="N", help="at most N records a page")
    faults.add_argument(
        "--invalid-body-rate", type=_fraction, default=0.0, help="share of 200s with a broken body"
    )
    faults.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws")
    return parser


def build_app(args: argparse.Namespace) -> SimulatorApp:
    """The app the options describe (exposed for tests)."""
    if (args.ak is None) != (args.sk is None):
        raise SystemExit("simulator: --ak and --sk go together")
    if args.ak and args.token:
        raise SystemExit("simulator: use --ak/--sk or --token, not both")
    try:
        config = _config(args)
    except ValueError as exc:
        raise SystemExit(f"simulator: {exc}") from None
    faults = Faults(
        seed=args.fault_seed,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        retry_after=not args.no_retry_after,
        error_rate=args.error_rate,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        page_clamp=args.page_clamp,
        invalid_body_rate=args.invalid_body_rate,
    )
    return SimulatorApp(
        Dataset(config),
        faults=faults,
        clock=Clock(args.now),
        credentials={args.ak: args.sk} if args.ak else None,
        token=args.token,
        cache_bytes=args.cache_mb * 1024 * 1024,
    )


def _config(args: argparse.Namespace) -> SimConfig:
    return SimConfig(
        seed=args.seed,
        days=args.days,
        now=args.now,
        tickets_per_day=args.tickets_per_day,
        max_batch_size=args.max_batch_size,
        instances_per_day=args.instances_per_day,
        hostile_uuids=args.hostile_uuids,
        drift=args.drift,
        hosts=args.hosts,
        rollouts=not args.no_rollouts,
        onsets=tuple(args.onset),
    )


def run(args: argparse.Namespace) -> int:
    app = build_app(args)
    dataset = app.dataset
    warmed = 0
    for day in args.warm:
        windows = [dataset.day_window(d) for d in dataset.days()] if day == "all" else []
        windows = windows or [dataset.day_window(day)]
        warmed += sum(app.warm(start, end) for start, end in windows)
    auth = "AK/SK signatures" if args.ak else "X-Auth-Token" if args.token else "none"
    first, last = dataset.days()[0], dataset.days()[-1]
    print(
        f"COC simulator: seed {args.seed}, {len(dataset.tickets)} tickets from {first} to "
        f"{last}, clock {'fixed at ' + args.now.isoformat() if args.now else 'real time'}, "
        f"auth {auth}" + (f", {warmed} instances pre-rendered" if warmed else ""),
        file=sys.stderr,
        flush=True,
    )

    def announce(url: str) -> None:
        print(READY_LINE.format(url=url), flush=True)

    serve_forever(app, host=args.host, port=args.port, on_ready=announce)
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str = "python -m coc_simulator") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    add_simulator_arguments(parser)
    return run(parser.parse_args(argv))
