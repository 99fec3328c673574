"""Scenario 3: the web worker dies between the batch's commit and its reply.

gunicorn runs the test-only ``tests.chaos.crash_wsgi`` entry point, which SIGKILLs its worker
after the SubmitMessages transaction committed and before the reply leaves. The terminals
see a dropped connection and re-send the same batch: every answer to a re-send must be
``Duplicate`` (the first call was stored whole), and each message exists exactly once.
"""

from __future__ import annotations

import pytest

from tests.chaos.checker import check
from tests.chaos.conftest import LONG
from tests.chaos.load import LoadThread, SimConfig

pytestmark = pytest.mark.chaos


def test_web_worker_killed_after_commit_yields_duplicates_on_retry(stack, record):
    # --preload: a replacement worker is a fork of the loaded master, up in milliseconds
    web = stack.start_web(
        workers=2, app="tests.chaos.crash_wsgi:application", args=("--preload",), CHAOS_WEB_CRASH_RATE="0.3"
    )
    url = stack.soap_url(web)
    credentials = stack.create_terminals(4)
    clusters = [stack.start_cluster()]
    load = LoadThread(
        SimConfig(url=url, rate=20, duration=150 if LONG else 30, bad_fraction=0.03, duplicate_fraction=0, seed=31),
        credentials,
    )
    load.start()
    load.join()
    assert load.error is None, load.error
    report = check(stack, load.ledger, "3-web-crash", settle_timeout=120, summary=load.summary)
    crashes = web.log_tail(10**7).count("was sent SIGKILL")
    ledger = load.ledger
    report.extra.update(
        web_crashes=crashes,
        retried_answers=dict(ledger.retried_answers),
        retry_reasons=dict(ledger.retry_reasons),
        clusters=len(clusters),
    )
    record(report)
    assert report.ok, report.render()
    assert crashes >= (40 if LONG else 8), web.log_tail()
    # each crash dropped one call, which the terminal re-sent (a re-send can crash again)
    assert ledger.retry_reasons.get("ConnectionError", 0) >= crashes // 2, ledger.retry_reasons
    # every crash happened after the commit: a re-sent batch is never Accepted again
    assert ledger.retried_answers.get("Accepted", 0) == 0, ledger.retried_answers
    assert ledger.retried_answers.get("Duplicate", 0) > 0
    assert ledger.gave_up == 0
    assert report.stored_without_ack == 0
