from django.conf import settings
from django.core.management.base import BaseCommand

from shopswift_ops.demo import setup_demo


class Command(BaseCommand):
    help = "Create the demo users (one per role) and an all-scope API token in .data/demo-token (idempotent)."

    def handle(self, *args, **options):
        lines = setup_demo(data_dir=settings.DATA_DIR)
        if options["verbosity"] >= 1:
            for line in lines:
                self.stdout.write(line)
