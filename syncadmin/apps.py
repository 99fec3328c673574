from django.apps import AppConfig


class SyncAdminConfig(AppConfig):
    name = "syncadmin"
    verbose_name = "SyncAdmin"

    def ready(self):
        from syncadmin import checks  # noqa: F401  (registers system checks)
