"""Break-glass starting point (CONTRACT section 3): writes a policy version directly, bypassing
the ramp plan; audited as break-glass; prints the policy JSON."""
import json

from django.core.management.base import BaseCommand, CommandError

from rollout import services


class Command(BaseCommand):
    help = "Set the rollout policy's starting point (break-glass; refuses when serving > 0% unless --force)."

    def add_arguments(self, parser):
        parser.add_argument("--model-version", required=True)
        parser.add_argument("--traffic-pct", required=True, type=float)
        parser.add_argument("--salt", default=None)
        parser.add_argument("--mode", default="active", choices=["active", "shadow"])
        parser.add_argument("--reason", required=True)
        parser.add_argument("--actor", default="break-glass (manage.py rollout_bootstrap)")
        parser.add_argument("--force", action="store_true", help="even when the current policy serves more than 0%%")

    def handle(self, *args, **options):
        try:
            document = services.bootstrap_policy(
                model_version=options["model_version"], traffic_pct=options["traffic_pct"], salt=options["salt"],
                mode=options["mode"], reason=options["reason"], actor=options["actor"], force=options["force"])
        except services.ActionError as exc:
            raise CommandError(exc.detail) from exc
        self.stdout.write(json.dumps(document, indent=2))
