"""gunicorn's access lines in the application's JSON format (deploy/gunicorn.conf.py uses these)."""

import json
import logging
import os
from datetime import timedelta
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.glogging import Logger, SafeAtoms

from syncadmin.lib.logs import AccessLogFields, JsonFormatter


def access_record() -> logging.LogRecord:
    """The record gunicorn's access() writes for one request: the format, and the atoms as args."""
    cfg = Config()
    cfg.set("access_log_format", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"')
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/soap/terminal/v1/?x=1",
        "PATH_INFO": "/soap/terminal/v1/",
        "QUERY_STRING": "x=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "Zeep/4.3.3",
    }
    response = SimpleNamespace(status="200 OK", sent=512, headers=[])
    request = SimpleNamespace(headers=[("X-FORWARDED-FOR", "10.1.2.3")])
    atoms = SafeAtoms(Logger(cfg).atoms(response, request, environ, timedelta(milliseconds=42)))
    return logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, cfg.access_log_format, (atoms,), None)


def test_an_access_line_is_one_json_object_with_the_request_as_fields():
    record = access_record()
    assert AccessLogFields().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "gunicorn.access" and line["level"] == "INFO"
    assert line["message"] == '127.0.0.1 "POST /soap/terminal/v1/?x=1 HTTP/1.1" 200 512 42ms "Zeep/4.3.3"'
    assert {k: line[k] for k in ("method", "path", "query", "status", "bytes", "duration_ms", "pid")} == {
        "method": "POST",
        "path": "/soap/terminal/v1/",
        "query": "x=1",
        "status": 200,
        "bytes": 512,
        "duration_ms": 42,
        "pid": os.getpid(),
    }
    assert (line["remote_addr"], line["forwarded_for"], line["user_agent"]) == ("127.0.0.1", "10.1.2.3", "Zeep/4.3.3")


def test_missing_atoms_are_left_out_not_written_as_dashes():
    record = logging.LogRecord("gunicorn.access", logging.INFO, __file__, 1, "%(h)s", (SafeAtoms({"h": "-"}),), None)
    AccessLogFields().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "remote_addr" not in line and "forwarded_for" not in line and line["pid"] == os.getpid()
