"""Databases that several processes share (Optuna storages, the score cache), reached by URL:
SQLAlchemy's spelling and driver for a URL, SQLite's pragmas for many writers, a URL fit to print,
and which processes are alive (a worker's identity, checked before its work is taken over).

Kept apart from both users so that the search storage and the score cache open a database the
same way and neither imports the other.
"""

from __future__ import annotations

import importlib.util
import os
import socket
from pathlib import Path

def url_scheme(url: str) -> str:
    """'postgresql' for postgresql+psycopg://..., '' for a path."""
    return url.split("://", 1)[0].split("+")[0].lower() if "://" in url else ""


def sqlalchemy_url(url: str) -> str:
    """`postgres://` spelled as SQLAlchemy wants it, and psycopg2 used when psycopg 3 (SQLAlchemy's
    default PostgreSQL driver) is absent but psycopg2 is installed."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def driver_package(url: str) -> str:
    """What to pip install when a URL's database driver is missing."""
    scheme = url.split("://", 1)[0].lower()
    return {"postgresql": "'psycopg[binary]'", "postgres": "'psycopg[binary]'",
            "postgresql+psycopg2": "psycopg2-binary", "mysql": "pymysql"}.get(scheme, "the driver in the URL")


def hide_password(url: str) -> str:
    if "://" in url and "@" in url:
        head, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        if ":" in credentials:
            return f"{head}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def fast_sqlite(engine) -> None:
    """WAL journal with synchronous=NORMAL on every connection: writers on one machine do not block
    readers, and a commit costs no fsync. A killed process loses nothing committed; only a power
    cut may lose the last commits (which the callers' retry logic computes again)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections opened during set-up reconnect with the pragmas


def worker_identity() -> dict:
    """Host, pid and process start time: enough to tell later whether this worker is alive."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start_time(os.getpid())}


def process_start_time(pid: int) -> str:
    """The kernel's start time of a process (Linux /proc), '' when unknown; guards against pid reuse."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def worker_alive(worker: dict) -> bool | None:
    """Whether a worker process still runs; None when it ran on another host (cannot tell)."""
    if worker.get("host") != socket.gethostname():
        return None
    pid = int(worker.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = worker.get("start", "")
    return not start or process_start_time(pid) in ("", start)
