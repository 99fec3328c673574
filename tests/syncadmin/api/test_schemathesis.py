"""schemathesis (an independent OpenAPI fuzzer) against a live server, with a token for each role.

Every operation of the served schema, positive and negative examples (derandomized: the same cases on
every run; SCHEMATHESIS_EXAMPLES per operation and mode, default 8): no 5xx, every answer's status, media
type, headers and body as the schema says, and no state change by the Viewer, who may change nothing.
Runs on SQLite and, under `make test-postgres`, on PostgreSQL.
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from messages.models import BulkJob, DeadLetterGroupNote, Message, OutboundUpdate
from reconciliation.models import ReconciliationRun
from syncadmin.models import AuditEntry, IdempotencyRecord
from syncadmin.services import api_token_create
from terminals.models import Terminal
from tests.factories import BulkJobFactory, DeadLetterFactory, MessageFactory, TerminalFactory, UserFactory

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def state() -> tuple:
    """Everything an API call could change."""
    return (
        list(Message.objects.order_by("pk").values_list("pk", "state", "payload")),
        list(Terminal.objects.order_by("pk").values_list("code", "name", "store", "enabled", "api_key_hash")),
        AuditEntry.objects.count(),
        list(BulkJob.objects.order_by("pk").values_list("pk", "state")),
        ReconciliationRun.objects.count(),
        OutboundUpdate.objects.count(),
        list(DeadLetterGroupNote.objects.values_list("key", "note")),
        IdempotencyRecord.objects.count(),
    )


@pytest.fixture
def hub(live_server, transactional_db, settings):
    settings.SYNC_API_RATE = "100000/m"  # the fuzzer is not to be throttled
    terminal = TerminalFactory(code="FUZZ-1")
    DeadLetterFactory(message__terminal=terminal)
    MessageFactory(terminal=terminal)
    BulkJobFactory()
    return live_server.url


@pytest.mark.parametrize("role", ["Viewers", "Support", "Terminal admins"])
def test_schemathesis_finds_no_error_and_no_forbidden_change(hub, role):
    user = UserFactory(username=f"fuzz-{role.lower().replace(' ', '-')}", group=role)
    _, secret = api_token_create(user=user, name="schemathesis")
    auth = {"Authorization": f"Bearer {secret}"}
    schema = schemathesis.openapi.from_url(hub + "/api/v1/openapi.json")
    before = state()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=EXAMPLES,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def fuzz(case):
                response = case.call(base_url=hub, headers=auth)
                case.validate_response(response, checks=CHECKS)

            fuzz()
    if role == "Viewers":
        assert state() == before, "a Viewer changed something"
