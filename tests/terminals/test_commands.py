"""create_terminal / rotate_terminal_key, and the keys they print working over SOAP."""

import io

import pytest
from django.core.management import CommandError, call_command
from zeep.exceptions import Fault

from terminals.models import Terminal
from terminals.services import api_key_hash
from tests.terminals.helpers import code_of

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def last_key(output: str) -> str:
    last = output.strip().splitlines()[-1]
    assert last.startswith("api_key=")
    return last.removeprefix("api_key=")


def test_create_terminal_prints_a_working_key_last_and_stores_only_its_hash(zeep_client):
    key = last_key(run("create_terminal", "STORE12-T3", "--name", "Store 12 till 3"))
    assert len(key) >= 43  # 32 random bytes, url-safe base64
    terminal = Terminal.objects.get(code="STORE12-T3")
    assert terminal.enabled and terminal.name == "Store 12 till 3"
    assert terminal.api_key_hash == api_key_hash(key) and key not in terminal.api_key_hash
    assert zeep_client("STORE12-T3", key).service.Heartbeat(info={"AppVersion": "1"}).PendingUpdates == 0


def test_create_terminal_refuses_an_existing_code():
    run("create_terminal", "DUP")
    with pytest.raises(CommandError, match="already exists"):
        run("create_terminal", "DUP")


def test_rotate_terminal_key_prints_a_new_key_and_the_old_one_stops_working(zeep_client):
    old = last_key(run("create_terminal", "ROT"))
    new = last_key(run("rotate_terminal_key", "ROT"))
    assert new != old
    with pytest.raises(Fault) as exc:
        zeep_client("ROT", old).service.FetchUpdates(maxCount=1)
    assert code_of(exc.value) == "Client.AuthenticationFailed"
    assert zeep_client("ROT", new).service.FetchUpdates(maxCount=1) in (None, [])


def test_rotate_terminal_key_of_an_unknown_terminal_fails_clearly():
    with pytest.raises(CommandError, match="no terminal"):
        run("rotate_terminal_key", "NOPE")
