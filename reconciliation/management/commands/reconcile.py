"""`python manage.py reconcile`: run a reconciliation now and print its summary.

Exits 0 whatever the run found (discrepancies are findings, not errors); non-zero only
when the run itself could not complete.
"""

from django.core.management.base import BaseCommand, CommandError

from reconciliation import services
from reconciliation.models import RunTrigger


class Command(BaseCommand):
    help = "Compare terminal counts, live counters and the central store now; print a summary."

    def handle(self, *args, **options):
        try:
            run = services.run_now(trigger=RunTrigger.COMMAND, triggered_by="command")
        except Exception as exc:
            raise CommandError(f"reconciliation failed: {type(exc).__name__}: {exc}") from exc
        for line in services.summary_lines(run):
            self.stdout.write(line)
