"""Loaded by pytest before Django's settings (pyproject.toml: ``-p tests.worker_env``).

`make test` runs the suite in parallel (pytest-xdist). Each worker gets its own test database from
pytest-django; what the workers would still share is the Redis broker: a cluster one worker starts
under the default name would take the tasks another worker queued for its own database. So each
worker names its cluster after itself, before the settings read the name. A run without xdist
(one process) keeps the default.
"""

import os

if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("Q_CLUSTER_NAME", f"syncadmin-{worker}")
