from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate


class MessagesConfig(AppConfig):
    # The package is called `messages`, but django.contrib.messages already owns that label.
    name = "messages"
    label = "queue_messages"
    verbose_name = "Message queue"

    def ready(self):
        # Imported here: they import models, which do not exist before the registry is ready.
        from messages import handlers
        from syncadmin.lib.schedules import ensure_schedules

        # Handler modules (SYNC_HANDLER_MODULES) register their message types.
        handlers.load_handler_modules()
        post_migrate.connect(ensure_schedules, sender=self)

    def schedules(self) -> list[tuple[str, str, int]]:
        """The engine's django-q2 schedules (name, task, minutes), (re)created after every migrate."""
        return [
            ("sync-sweep", "messages.tasks.sweep", 1),
            # A changed SYNC_RETENTION_INTERVAL_MINUTES takes effect at the next migrate.
            ("sync-retention-purge", "messages.tasks.purge", settings.SYNC_RETENTION_INTERVAL_MINUTES),
            ("sync-bulk-jobs-resume", "messages.tasks.bulk_jobs_resume", 1),
        ]
