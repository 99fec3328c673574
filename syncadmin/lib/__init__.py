"""The ground floor: helpers every app shares. Imports Django and libraries, never an app.

What lives here is named for what it holds (the clock, SQL helpers, pagination, the console's
list-page recipe, table columns, schedules, validation, CSV export, logs, tracing, the metric
counters' plumbing). ``docs/development.md`` ("Module map") lists each module and its floor;
import-linter (``make lint``, contracts in pyproject.toml) keeps this package from importing
an app. Nothing here may import models at import time except ``syncadmin.models`` (the
ground's own tables): the logging configuration loads ``logs`` before the apps are ready.
"""
