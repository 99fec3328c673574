from django.apps import AppConfig


class SyncAdminConfig(AppConfig):
    name = "syncadmin"
    verbose_name = "SyncAdmin"

    def ready(self):
        # Observability: the metrics sample schedule, and tracing when OTEL_* asks for it.
        from django.db.models.signals import post_migrate

        from syncadmin import checks  # noqa: F401  (registers system checks)
        from syncadmin.observability import schedules, tracing

        post_migrate.connect(schedules.ensure_schedules, sender=self)
        tracing.setup()
