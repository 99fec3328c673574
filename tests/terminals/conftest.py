"""Fixtures for the SOAP API tests: a live server, terminals with keys, zeep clients, raw envelopes."""

from __future__ import annotations

import pytest

from terminals.simulator import make_client


@pytest.fixture
def soap_url(live_server) -> str:
    return live_server.url + "/soap/terminal/v1/"


@pytest.fixture
def make_terminal(transactional_db):
    from terminals.services import terminal_create

    def make(code: str = "TA", **kwargs):
        return terminal_create(code=code, **kwargs)

    return make


@pytest.fixture
def term_a(make_terminal):
    return make_terminal("TA")


@pytest.fixture
def term_b(make_terminal):
    return make_terminal("TB")


@pytest.fixture
def zeep_client(soap_url):
    """A zeep client for (code, key); key None gives a client that sends no Security header."""

    made = []

    def make(code: str, key: str | None):
        if key is None:
            from zeep import Client

            client = Client(soap_url + "?wsdl")
        else:
            client = make_client(soap_url, code, key)
        made.append(client)
        return client

    yield make
    # Close keep-alive connections, or the live server's request threads outlive the test.
    for client in made:
        client.transport.session.close()
