from pathlib import Path

from django.core.management.base import BaseCommand

from shopswift_ops.permissions_matrix import markdown


class Command(BaseCommand):
    help = "Print the permissions matrix (roles x capabilities x routes) as Markdown; --write FILE saves it."

    def add_arguments(self, parser):
        parser.add_argument("--write", metavar="FILE", help="write the matrix to FILE (e.g. docs/permissions.md)")

    def handle(self, *args, **options):
        text = markdown()
        if options["write"]:
            Path(options["write"]).write_text(text)
            self.stdout.write(f"wrote {options['write']}")
        else:
            self.stdout.write(text, ending="")
