"""Test-only: loaded (via PYTHONPATH) into the workers of the clock-skew scenario, never elsewhere.

libfaketime (LD_PRELOAD, FAKETIME="+5m", FAKETIME_DONT_FAKE_MONOTONIC=1) shifts every
wall-clock read of the process: time.time, datetime.now, Django's timezone.now, C code.
Its 0.9.10 build mistranslates the absolute CLOCK_MONOTONIC deadline that Python 3.11's
time.sleep passes to clock_nanosleep (EINVAL), while waits on a condition variable work:
so sleep is rerouted through one. Nothing else is changed.
"""

import os
import threading
import time

if os.environ.get("FAKETIME") and "faketime" in os.environ.get("LD_PRELOAD", ""):
    _real_sleep = time.sleep

    def _sleep(seconds):
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        if seconds:
            threading.Event().wait(seconds)

    time.sleep = _sleep
