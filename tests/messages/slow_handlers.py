"""Loaded by SYNC_HANDLER_MODULES in the cluster tests: makes product.upsert slow to apply."""

import time

from messages.handlers import EntityHandler, registry


class SlowEntityHandler(EntityHandler):
    def apply_many(self, items):
        time.sleep(0.2)
        super().apply_many(items)


registry.register("product.upsert", SlowEntityHandler())
