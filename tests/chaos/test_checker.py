"""The checker refuses a scenario that checked nothing: a load acknowledged nothing, or a till that went silent.

Found in CI (2026-12-03): scenario 3's crash hook also killed the worker that served the WSDL,
so zeep clients gave up before their first call; a run whose four tills all did so was
acknowledged nothing, lost nothing, and passed. These run without a stack (no chaos mark).
"""

from tests.chaos.checker import Report
from tests.chaos.crash_wsgi import application as crash_application
from tests.chaos.load import ChaosTerminal, Ledger, SimConfig


def test_a_report_with_nothing_acknowledged_is_not_ok():
    assert not Report(scenario="x").ok
    assert Report(scenario="x", acknowledged=10).ok


def test_a_silent_terminal_fails_the_report():
    assert not Report(scenario="x", acknowledged=10, silent_terminals=1).ok
    assert "SILENT_TERMINALS=1" in Report(scenario="x", acknowledged=10, silent_terminals=1).render()


def test_every_load_terminal_is_on_the_ledger():
    import random
    import threading

    from terminals.simulator import Summary

    ledger = Ledger()
    for code in ("A", "B"):
        ChaosTerminal(code, "key", SimConfig(url="http://x"), Summary(), threading.Lock(), random.Random(1),
                      ledger=ledger, patience=1.0)  # fmt: skip
    assert ledger.terminals == {"A", "B"}


def test_the_crash_hook_spares_the_wsdl(monkeypatch):
    import tests.chaos.crash_wsgi as crash

    monkeypatch.setattr(crash, "RATE", 1.0)
    killed = []
    monkeypatch.setattr(crash.os, "kill", lambda pid, sig: killed.append(sig))

    def app(environ, start_response):  # a 200 whose body names SubmitMessagesResponse, as the WSDL does
        start_response("200 OK", [])
        return [b"<SubmitMessagesResponse/>"]

    monkeypatch.setattr(crash, "project_application", app)
    crash_application({"REQUEST_METHOD": "GET"}, lambda *a: None)
    assert killed == []
    crash_application({"REQUEST_METHOD": "POST"}, lambda *a: None)
    assert len(killed) == 1
