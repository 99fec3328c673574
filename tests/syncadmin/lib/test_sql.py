"""syncadmin/lib/sql.py: one function per database vendor, chosen by the connection a call names."""

import pytest
from django.db import connection

from syncadmin.lib.sql import chunks, per_vendor


def test_a_call_runs_the_variant_of_its_connections_vendor_else_the_portable_one():
    calls = []

    @per_vendor
    def operation(using: str = "default", value: int = 0) -> str:
        calls.append(("portable", using, value))
        return "portable"

    @operation.vendor("no-such-database")
    def _elsewhere(using: str = "default", value: int = 0) -> str:
        return "elsewhere"

    assert operation() == "portable"  # the default alias
    assert operation("default", 1) == operation(using="default", value=1) == "portable"

    @operation.vendor(connection.vendor)
    def _here(using: str = "default", value: int = 0) -> str:
        calls.append(("here", using, value))
        return "here"

    assert operation("default", 2) == operation(using="default", value=3) == operation() == "here"
    assert calls[-3:] == [("here", "default", 2), ("here", "default", 3), ("here", "default", 0)]
    assert operation.portable("default") == "portable"


def test_an_operation_without_a_connection_to_choose_by_is_refused():
    with pytest.raises(TypeError, match="no 'using' parameter"):

        @per_vendor
        def operation(value: int) -> None:
            pass


def test_chunks_cut_in_order_and_never_yield_an_empty_list():
    assert list(chunks(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(chunks([], 900)) == []
