"""Test-only handlers, loaded by SYNC_HANDLER_MODULES in the chaos scenarios' workers.

``poison.apply`` kills the worker process that applies it, the way a segfaulting native
library or the OOM killer would: no exception, no rollback handler, no django-q2 failure
record. django-q2 alone would redeliver such a task forever; the engine counts the attempt
at claim time and dead-letters the message after SYNC_MAX_ATTEMPTS claims.
"""

import os

from messages.handlers import registry


@registry.register("poison.apply")
def kill_my_worker(item):
    os._exit(137)


@registry.register("flaky.upsert")
def fail_first_attempts(item):
    """Fails (transiently) until its third attempt, then loads like any entity."""
    if item.message.attempts < 3:
        raise RuntimeError(f"flaky: attempt {item.message.attempts}")
    registry.entity_handler.apply_many([item])
