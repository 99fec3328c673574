"""JSON text from outside (terminal payloads, console forms): every way it can be wrong is a ValueError.

``json.loads`` raises RecursionError, not ValueError, for arrays or objects nested deeper than the
interpreter's recursion limit (``"[" * 100_000`` is a few hundred KB, well inside the SOAP body
limit). Each caller caught ValueError only, so such a payload failed a worker's whole batch and
answered 500 on the console pages that show or check it. Imports no app.
"""

from __future__ import annotations

import json


def json_parse(text: str):
    """The value of the JSON ``text``; ValueError (with a reason) when it is not JSON this hub can read."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
