#!/usr/bin/env python
"""Django's command-line utility for SyncAdmin."""

import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "syncadmin.settings")
    if sys.argv[1:2] == ["serve"]:
        # `make run`'s command writes to a terminal: plain lines (settings default to JSON, for a
        # journal). Set before the settings load, so this process's own start-up lines are plain too;
        # serve passes it on to gunicorn and the worker cluster. LOG_FORMAT=json still wins.
        os.environ.setdefault("LOG_FORMAT", "plain")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
