from django.core.management.base import BaseCommand, CommandError

from metrics.retention import RetentionError, apply_retention, retention_days


class Command(BaseCommand):
    help = ("Drop the daily partitions of raw decision/outcome events older than --days "
            "(default EVENT_RETENTION_DAYS); rollups are kept.")

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="keep this many days (default: EVENT_RETENTION_DAYS)")

    def handle(self, *args, **options):
        days = options["days"] if options["days"] is not None else retention_days()
        try:
            dropped = apply_retention(days=days)
        except RetentionError as exc:
            raise CommandError(str(exc)) from None
        for name in dropped:
            self.stdout.write(f"dropped {name}")
        self.stdout.write(f"{len(dropped)} partition(s) older than {days} days dropped")
