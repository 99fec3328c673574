"""Reset the per-state message counters from a full count (maintenance; workers stopped)."""

from django.core.management.base import BaseCommand

from messages.metrics import message_state_recount


class Command(BaseCommand):
    help = (
        "Recount messages per state and reset the /metrics state counters to it. A full table scan: "
        "run it in a maintenance window with the workers stopped, e.g. after bulk-deleting messages."
    )

    def handle(self, *args, **options):
        counts = message_state_recount()
        for state, n in sorted(counts.items()):
            self.stdout.write(f"{state}: {n}")
        self.stdout.write(self.style.SUCCESS("message state counters reset"))
