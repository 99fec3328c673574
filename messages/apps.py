from django.apps import AppConfig


class MessagesConfig(AppConfig):
    # The package is called `messages`, but django.contrib.messages already owns that label.
    name = "messages"
    label = "queue_messages"
    verbose_name = "Message queue"

    def ready(self):
        from messages import handlers

        handlers.load_handler_modules()
        from django.db.models.signals import post_migrate

        from messages.schedules import ensure_schedules

        post_migrate.connect(ensure_schedules, sender=self)
        from messages.schedules_scale import ensure_schedules as ensure_scale_schedules

        post_migrate.connect(ensure_scale_schedules, sender=self)
