from django.core.management.base import BaseCommand, CommandError

from shopswift_ops.tokens import TokenError, revoke_token


class Command(BaseCommand):
    help = "Revoke an API token by name; it stops working at once."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name, **options):
        try:
            token = revoke_token(name=name)
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"revoked {token.name!r} at {token.revoked_at.isoformat()}")
