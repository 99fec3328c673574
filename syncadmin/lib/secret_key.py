"""The demo's secret key: made once, kept in SYNC_VAR_DIR, read the same by every process (settings-time)."""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import environ


def demo_secret_key(var_dir: Path) -> str:
    """A random key kept in var/ so a demo never runs on a published default key.

    Several processes start at once (web server, workers, `manage.py` commands), so the file
    must appear whole and only once: the key is written to a private temporary file, which is
    then hard-linked to its name. link() fails if the name exists, so the first process wins and
    every other one reads the winner's key; nobody ever reads a half-written (empty) file, and no
    two processes sign with different keys (django-q2 would reject the other's tasks).
    """
    path = var_dir / "secret_key"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=var_dir, prefix=".secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(50))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process won the race: use its key
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if not key:
        raise environ.ImproperlyConfigured(f"{path} is empty: delete it (a new key is made) or set DJANGO_SECRET_KEY")
    return key
