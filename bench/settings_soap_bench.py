"""Settings for bench/soap.py only: production settings plus the bench-only JSON ingest view."""

from syncadmin.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_soap_bench"
