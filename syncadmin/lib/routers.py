"""Send the central store to its own database when CENTRAL_DATABASE_URL is set."""

from django.conf import settings

CENTRAL_MODELS = {"centralentity", "entitycounter"}


def central_alias() -> str:
    return "central" if "central" in settings.DATABASES else "default"


class CentralStoreRouter:
    def _is_central(self, model) -> bool:
        return model._meta.app_label == "queue_messages" and model._meta.model_name in CENTRAL_MODELS

    def db_for_read(self, model, **hints):
        return central_alias() if self._is_central(model) else None

    db_for_write = db_for_read

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        if "central" not in settings.DATABASES:
            return None
        if app_label == "queue_messages" and model_name in CENTRAL_MODELS:
            return db == "central"
        return db == "default"
