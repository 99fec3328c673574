"""Test-only WSGI entry point for scenario 3: the web worker dies between commit and reply.

gunicorn is started with ``tests.chaos.crash_wsgi:application`` instead of the project's
``syncadmin.wsgi:application`` (production never imports this module). It runs the real
application to completion - the SubmitMessages batch is committed when the response body
exists - and then, for a share CHAOS_WEB_CRASH_RATE of SubmitMessages replies, SIGKILLs its
own worker process before a byte of the reply is sent. The terminal sees a dropped connection
and must get ``Duplicate`` for every message when it re-sends the batch.
"""

import os
import random
import signal

from syncadmin.wsgi import application as project_application

RATE = float(os.environ.get("CHAOS_WEB_CRASH_RATE", "0"))


def application(environ, start_response):
    captured = []

    def capture(status, headers, exc_info=None):
        captured.append((status, headers, exc_info))
        return lambda data: None

    result = project_application(environ, capture)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    status, headers, exc_info = captured[0]
    # A POST only: the WSDL (a GET) names SubmitMessagesResponse too, and killing the worker that
    # served it made a till's zeep client give up before its first call (a run whose load was
    # acknowledged nothing still passed the checker: found in CI, 2026-12-03).
    submitted = environ.get("REQUEST_METHOD") == "POST" and b"SubmitMessagesResponse" in body
    if status.startswith("200") and submitted and random.random() < RATE:
        os.kill(os.getpid(), signal.SIGKILL)  # committed, not yet answered
    start_response(status, headers, exc_info)
    return [body]
