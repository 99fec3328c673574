"""`python manage.py alerts_evaluate`: evaluate the alert rules once and deliver what is due, without the workers.

The workers evaluate the rules every minute, but they cannot report their own absence: run this from
a timer on a web node (deploy/systemd/syncadmin-alerts.timer) so "worker cluster gone" is raised
and its notifications are sent while no worker runs. It delivers directly, not through a task.
"""

from django.core.management.base import BaseCommand

from reconciliation.alerts import delivery, incidents


class Command(BaseCommand):
    help = "Evaluate the alert rules once and deliver the notifications that are due."

    def handle(self, *args, **options):
        result = incidents.alerts_evaluate()
        sent = delivery.notifications_due_deliver()
        self.stdout.write(f"opened {len(result.opened)}, cleared {len(result.cleared)}, notifications sent {sent}")
