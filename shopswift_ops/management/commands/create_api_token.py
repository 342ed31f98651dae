from django.core.management.base import BaseCommand, CommandError

from shopswift_ops.tokens import TokenError, create_token, parse_scopes


class Command(BaseCommand):
    help = "Create an API token and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", required=True, help="comma-separated, e.g. events:write,policy:read")

    def handle(self, *args, name, scopes, **options):
        try:
            token, raw = create_token(name=name, scopes=parse_scopes(scopes))
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        self.stderr.write(f"token {token.name!r} with scopes {', '.join(token.scopes)} (shown once):")
        self.stdout.write(raw)
