from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"

    def ready(self):
        from django.db.models.signals import post_migrate

        from reconciliation.schedules import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)
