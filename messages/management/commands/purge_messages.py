"""Run the retention purge now (the schedule does it every SYNC_RETENTION_INTERVAL_MINUTES)."""

from django.core.management.base import BaseCommand

from messages.services import retention as services_retention


class Command(BaseCommand):
    help = "Purge Processed/Discarded messages older than SYNC_RETENTION_DAYS, in small batches, and record the run."

    def add_arguments(self, parser):
        parser.add_argument("--until-done", action="store_true", help="repeat runs until nothing is left to purge")
        parser.add_argument("--max-seconds", type=float, default=None, help="time budget of one run")

    def handle(self, *args, until_done, max_seconds, **options):
        while True:
            run = services_retention.purge_run(trigger="command", max_seconds=max_seconds)
            if run is None:
                self.stdout.write("another purge run is in progress; nothing done")
                return
            self.stdout.write(
                f"purge run {run.pk}: removed {run.messages_removed} message(s), {run.events_removed} event(s), "
                f"{run.deadletters_removed} dead letter(s) in {run.duration_ms / 1000:.1f}s"
                + (" (more to purge)" if run.more else "")
            )
            if not (until_done and run.more):
                return
