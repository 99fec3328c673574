"""Regression (found by chaos scenario 6): an operator's event stamped before the event it follows.

message_retry/message_discard read the database clock first and locked the rows after. A
worker that committed Processing -> Failed in between got the later timestamp, so the
lifecycle (ordered by time) read Processing, Failed->Received, Processing->Failed: an
impossible chain. The clock is now read once the row locks are held. The race is made
deterministic by letting the worker commit right after the operator's clock read.
"""

import threading

import pytest
from django.db import connection

from messages import services
from messages.models import MessageEvent, MessageState
from messages.services import operator as operator_services
from syncadmin.lib.clock import db_now
from tests.messages.helpers import env

S = MessageState
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("action", ["retry", "discard"])
def test_an_operator_event_is_never_stamped_before_the_worker_event_it_follows(terminal, action, monkeypatch):
    services.message_ingest_batch(terminal=terminal, envelopes=[env("m1")])
    [m] = services.message_claim(worker="w1", limit=1)
    real_db_now = db_now
    operator = threading.current_thread()
    fired = []

    def worker_fails_the_message():
        try:
            services.message_transition(
                message_ids=[m.pk],
                from_state=S.PROCESSING,
                to_state=S.FAILED,
                actor="w1",
                fields={"lease_owner": "", "lease_expires_at": None},
                only_if={"lease_owner": "w1"},
            )
        finally:
            connection.close()

    def db_now_then_worker_commits(*args, **kwargs):
        value = real_db_now(*args, **kwargs)
        if threading.current_thread() is operator and not fired:
            fired.append(True)
            t = threading.Thread(target=worker_fails_the_message)  # its own connection, commits now
            t.start()
            t.join(10)
        return value

    monkeypatch.setattr(operator_services, "db_now", db_now_then_worker_commits)
    if action == "retry":
        services.message_retry(message_ids=[m.pk], actor="user:op")
    else:
        services.message_discard(message_ids=[m.pk], actor="user:op", reason="r")
    assert fired
    chain = list(
        MessageEvent.objects.filter(message_id=m.pk).order_by("at", "id").values_list("from_state", "to_state")
    )
    assert ("Processing", "Failed") in chain
    for (_, previous_to), (next_from, _) in zip(chain, chain[1:], strict=False):
        assert next_from == previous_to, chain
