"""messages/services/console.py: the console's operator actions, audited."""

import pytest

from messages.models import Message, MessageState
from messages.services.console import ActionRefused, message_edit_and_retry
from tests.factories import DeadLetterFactory

S = MessageState
pytestmark = pytest.mark.django_db


def test_edit_and_retry_refuses_json_nested_too_deep(terminal):
    # Any caller of the service (a form, a script, a future API) gets the service's refusal, not a RecursionError.
    dl = DeadLetterFactory(message__terminal=terminal)
    with pytest.raises(ActionRefused, match="not valid JSON: nested too deeply"):
        message_edit_and_retry(message_id=dl.message.pk, payload="[" * 100_000 + "]" * 100_000, actor="t", reason="r")
    assert Message.objects.get(pk=dl.message.pk).state == MessageState.DEAD_LETTERED
