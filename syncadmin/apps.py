from django.apps import AppConfig
from django.db.models.signals import post_migrate


class SyncAdminConfig(AppConfig):
    name = "syncadmin"
    verbose_name = "SyncAdmin"

    def ready(self):
        # Imported here: they import models, which do not exist before the registry is ready.
        from syncadmin import checks  # noqa: F401  (registers system checks)
        from syncadmin.lib import tracing
        from syncadmin.lib.schedules import ensure_schedules

        # The metrics sample schedule, and tracing when OTEL_* asks for it.
        post_migrate.connect(ensure_schedules, sender=self)
        tracing.setup()

    def schedules(self) -> list[tuple[str, str, int]]:
        """The once-a-minute metrics sample (name, task, minutes), also the worker cluster's heartbeat; the
        hourly purges of the API's expired idempotency records and past rate windows."""
        return [
            ("syncadmin-metrics-sample", "syncadmin.observability.tasks.metrics_sample", 1),
            ("syncadmin-api-idempotency-purge", "syncadmin.api.tasks.idempotency_records_purge", 60),
            ("syncadmin-api-rate-windows-purge", "syncadmin.api.tasks.api_call_windows_forget", 60),
        ]
