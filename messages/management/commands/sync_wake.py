"""Wake the worker pool now (the sweep schedule does this every minute anyway)."""

from django.core.management.base import BaseCommand

from messages.services.wakeup import enqueue_drain, sweep


class Command(BaseCommand):
    help = "Enqueue drain tasks so the workers pick up due work and expired leases at once."

    def add_arguments(self, parser):
        parser.add_argument(
            "--drains", type=int, default=0, help="how many drain tasks (default: as the sweep decides)"
        )

    def handle(self, *args, drains, **options):
        if drains:
            enqueue_drain(drains)
            self.stdout.write(f"enqueued {drains} drain task(s)")
        else:
            due = sweep()
            self.stdout.write(f"{due} due message(s)")
