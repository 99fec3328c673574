"""syncadmin/lib/fastsql.py: PipelineFromHere sends a transaction's last statements with its COMMIT;
arrays sent as one text come back from the server exactly as they went, and so do rows unnested from them."""

import pytest
from django.db import IntegrityError, connection, transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from syncadmin.lib.fastsql import SEPARATOR, PipelineFromHere, numbers, server_binding_cursor, texts, unnested
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


def _server_array(sql: str, param):
    with server_binding_cursor("default") as cursor:
        cursor.execute(f"SELECT {sql}", [param])
        return cursor.fetchone()[0]


# PostgreSQL's text cannot hold NUL at all; everything else goes, the separator and empty strings included.
_text = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_text, st.sampled_from(["", SEPARATOR, f"a{SEPARATOR}b", "{}", '"', "\\", ",", "NULL"]))))
def test_a_text_array_comes_back_exactly(values):
    assert _server_array(*texts(values)) == values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1)))
def test_a_bigint_array_comes_back_exactly(values):
    assert _server_array(*numbers(values, "bigint")) == values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(allow_nan=False)))
def test_a_float_array_comes_back_exactly(values):
    assert _server_array(*numbers(values, "float8")) == values


def test_booleans_come_back_and_an_empty_list_is_an_empty_array():
    assert _server_array(*numbers([True, False, True], "bool")) == [True, False, True]
    assert _server_array(*numbers([], "bigint")) == []
    assert _server_array(*texts([])) == []


def test_plain_texts_travel_joined_and_the_others_as_an_array():
    assert texts(["product", "K1"]) == ("string_to_array(%s, chr(31))", f"product{SEPARATOR}K1")
    # string_to_array cannot tell these apart from other arrays: they go as the array itself
    for values in ([f"a{SEPARATOR}b"], [""], []):
        assert texts(values) == ("%b::text[]", values)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            _text, st.integers(min_value=-(2**63), max_value=2**63 - 1), st.booleans(), st.floats(allow_nan=False)
        )
    )
)
def test_rows_unnested_from_parallel_arrays_come_back_exactly_and_in_order(rows):
    columns = [list(column) for column in zip(*rows, strict=True)] or [[], [], [], []]
    source, params = unnested(*zip(("text", "bigint", "bool", "float8"), columns, strict=True))
    with server_binding_cursor("default") as cursor:
        cursor.execute(f"SELECT a, b, c, d FROM {source} WITH ORDINALITY AS u(a, b, c, d, n) ORDER BY n", params)
        assert cursor.fetchall() == rows
