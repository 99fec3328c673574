"""syncadmin/lib/fastsql.py: PipelineFromHere sends a transaction's last statements with its COMMIT."""

import pytest
from django.db import IntegrityError, connection, transaction

from syncadmin.lib.fastsql import PipelineFromHere, server_binding_cursor
from terminals.models import Terminal

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _insert_on_exit(code: str):
    """A block that inserts a terminal when it closes, as the batch's counters are written."""

    class OnExit:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            if exc[0] is None:
                with server_binding_cursor("default") as cursor:
                    cursor.execute(
                        "INSERT INTO terminals_terminal (code, name, store, enabled, api_key_hash, app_version,"
                        " created_at, updated_at) VALUES (%s, '', '', true, '', '', now(), now())",
                        [code],
                    )

    return OnExit()


def test_the_statements_after_start_commit_with_the_transaction():
    with PipelineFromHere("default") as tail, transaction.atomic(), _insert_on_exit("T-LATE"):
        Terminal.objects.create(code="T-FIRST")
        tail.start()
        assert connection.connection._pipeline is not None  # the exits' statements are queued from here
    assert connection.connection._pipeline is None  # and the connection is back to normal
    assert sorted(Terminal.objects.values_list("code", flat=True)) == ["T-FIRST", "T-LATE"]


def test_an_error_among_them_is_raised_as_djangos_and_rolls_the_whole_transaction_back():
    Terminal.objects.create(code="T-TAKEN")
    with pytest.raises(IntegrityError):  # Django's: the caller's error handling sees what it always saw
        with PipelineFromHere("default") as tail, transaction.atomic(), _insert_on_exit("T-TAKEN"):
            Terminal.objects.create(code="T-FIRST")
            tail.start()
    assert connection.connection._pipeline is None
    assert list(Terminal.objects.values_list("code", flat=True)) == ["T-TAKEN"]  # T-FIRST rolled back too


def test_an_error_before_start_leaves_no_pipeline_behind():
    with pytest.raises(ZeroDivisionError), PipelineFromHere("default"), transaction.atomic():
        Terminal.objects.create(code="T-FIRST")
        1 / 0  # noqa: B018
    assert connection.connection._pipeline is None and not Terminal.objects.exists()
