"""Metrics counted in this process only (prometheus_client), beside the database's cluster-wide ones.

A module that counts something per process (the SOAP gateway: requests and their durations)
registers its families in ``PROCESS_REGISTRY``; /metrics exposes it after the database's series.
Its own registry, not prometheus_client's global one, whose process/platform collectors make no
sense summed over processes. With several gunicorn workers set PROMETHEUS_MULTIPROC_DIR (an
empty directory, wiped at start) before start-up: the families are then summed across a host's
workers (prometheus_client's multiprocess mode), and each web host is one scrape target.
"""

from prometheus_client import CollectorRegistry

PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
