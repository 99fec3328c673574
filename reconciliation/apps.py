from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class ReconciliationConfig(AppConfig):
    name = "reconciliation"

    def ready(self):
        # Imported here: they import models, which do not exist before the registry is ready.
        from syncadmin.lib.schedules import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)

    def schedules(self) -> list[tuple[str, str, int]]:
        """The periodic run and the alerts' minute (name, task, minutes).

        A new RECONCILIATION_INTERVAL_MINUTES applies at the next migrate."""
        return [
            ("reconciliation-run", "reconciliation.tasks.scheduled", settings.RECONCILIATION_INTERVAL_MINUTES),
            # The alert rules, and the retries of undelivered notifications (docs/operations/alerts.md).
            ("alerts-evaluate", "reconciliation.tasks.alerts_evaluate", 1),
        ]
