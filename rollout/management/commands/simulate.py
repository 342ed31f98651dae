"""`manage.py simulate`: the simulated payments service (see rollout.simulator)."""
from __future__ import annotations

import logging
import os
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from rollout.simulator import ScenarioError, load_scenario, scenario_names

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def parse_duration(text: str) -> float:
    """'90', '90s', '15m', '2h', '1d' -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise CommandError(f"--duration: {text!r} is not a duration like 90s, 15m, 2h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


class Command(BaseCommand):
    help = ("Play ShopSwift's payments service against the product: read the rollout policy over HTTP, "
            "assign, score, decide, post events. With --backfill/--backfill-hours, first write history "
            "directly into the event store.")

    def add_arguments(self, parser):
        parser.add_argument("--scenario", default="baseline", help=f"one of: {', '.join(scenario_names())}, or a .json path")
        parser.add_argument("--rate", type=float, help="orders per second at load 1.0 (default: the scenario's, 21)")
        parser.add_argument("--speed", type=float, default=1.0, help="scenario minutes per wall minute (live mode)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--duration", help="stop after this much wall time (90s, 15m, 2h); default: until Ctrl-C")
        parser.add_argument("--from-minute", type=float, default=0.0, help="start the scenario at this minute")
        parser.add_argument("--url", help="the product's base URL, e.g. http://127.0.0.1:8000 (live mode)")
        parser.add_argument("--token", help="API token with events:write and policy:read (rollout:write for actions)")
        parser.add_argument("--token-file", help="read the token from this file")
        parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between policy polls")
        parser.add_argument("--backfill", type=float, metavar="DAYS", help="write DAYS of history ending now, then exit")
        parser.add_argument("--backfill-hours", type=float, metavar="HOURS",
                            help="write HOURS of history ending now (skipping time already stored), then go live if --url")
        parser.add_argument("--backfill-scenario", metavar="NAME",
                            help="scenario of the backfilled history (default: --scenario); `make run` uses baseline "
                                 "so that the live story starts from healthy history")
        parser.add_argument("--jobs", type=int, default=0,
                            help="backfill processes (default: one per CPU for spans over 6 hours, else 1)")
        parser.add_argument("--quiet", action="store_true", help="one progress line every few seconds")

    def handle(self, *args, **options):
        try:
            scenario = load_scenario(options["scenario"])
        except ScenarioError as exc:
            raise CommandError(str(exc)) from None
        hours = None
        if options["backfill"] is not None:
            hours = options["backfill"] * 24
        elif options["backfill_hours"] is not None:
            hours = options["backfill_hours"]
        if hours:
            try:
                history = load_scenario(options["backfill_scenario"]) if options["backfill_scenario"] else scenario
            except ScenarioError as exc:
                raise CommandError(str(exc)) from None
            self._backfill(history, hours, options, skip_stored=options["backfill"] is None)
        if options["backfill"] is not None or not options["url"]:
            if hours is None:
                raise CommandError("give --url (live mode) or --backfill DAYS / --backfill-hours HOURS")
            return
        self._live(scenario, options)

    def _backfill(self, scenario, hours: float, options, *, skip_stored: bool) -> None:
        from rollout.simulator.backfill import backfill

        end = datetime.now(UTC)
        start = end - timedelta(hours=hours)
        if skip_stored:
            with connection.cursor() as cursor:
                cursor.execute("SELECT max(occurred_at) FROM metrics_decision WHERE occurred_at > %s", [start])
                latest = cursor.fetchone()[0]
            if latest is not None:
                start = latest + timedelta(seconds=1)
        if end - start < timedelta(minutes=1):
            self.stdout.write("backfill: history already stored up to now; nothing to write")
            return
        self.stdout.write(f"backfill: {scenario.name} from {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC…")

        def progress(totals, seconds):
            if not options["quiet"]:
                self.stdout.write(f"  {totals['stored']:,} events in {seconds:.0f}s")

        jobs = options["jobs"] or ((os.cpu_count() or 1) if hours > 6 else 1)
        totals = backfill(scenario, start=start, end=end, seed=options["seed"], rate=options["rate"],
                          from_minute=options["from_minute"], progress=progress, jobs=jobs)
        rate = totals["orders"] / totals["seconds"] if totals["seconds"] else 0
        self.stdout.write(f"backfill: {totals['orders']:,} orders, {totals['decisions']:,} decisions and "
                          f"{totals['outcomes']:,} outcomes stored in {totals['seconds']}s ({rate:,.0f} orders/s)")

    def _live(self, scenario, options) -> None:
        from rollout.simulator.live import LiveRunner

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the progress

        token = options["token"]
        if options["token_file"]:
            try:
                token = Path(options["token_file"]).read_text().strip()
            except OSError as exc:
                raise CommandError(f"--token-file: {exc}") from None
        if not token:
            raise CommandError("--token or --token-file is required in live mode")
        duration = parse_duration(options["duration"]) if options["duration"] else None
        runner = LiveRunner(scenario, url=options["url"], token=token, seed=options["seed"], speed=options["speed"],
                            rate=options["rate"], poll_interval=options["poll_interval"], duration=duration,
                            from_minute=options["from_minute"], quiet=options["quiet"], out=self.stdout)
        signal.signal(signal.SIGTERM, lambda *_: runner.stop())
        runner.say(f"scenario {scenario.name} at speed x{options['speed']:g}, "
                   f"{runner.rate:g} orders/s, posting to {options['url']}")
        try:
            runner.run()
        except KeyboardInterrupt:
            runner.stop()
