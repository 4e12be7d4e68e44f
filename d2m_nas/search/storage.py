"""Optuna storage by URL: SQLite (default; also the `--workers` of one command), a journal file
(several processes on one machine started by hand) or PostgreSQL/MySQL (several machines), with
one-line errors that say what to do.

Kept apart from the search loop (`optuna_backend`) so that whatever shares a study or a store
across processes opens it the same way.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from pathlib import Path

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback

from d2m_nas.databases import driver_package, fast_sqlite, hide_password, sqlalchemy_url

STORAGE_HELP = ("use sqlite:///FILE.db (the default, in the run directory), journal:FILE.log (several processes "
                "on one machine) or postgresql://USER:PASSWORD@HOST:PORT/DB (several machines)")
_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


@contextlib.contextmanager
def quiet():
    """Silence Optuna's "experimental" warnings for the heartbeat and retry APIs we rely on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


class StorageError(ValueError):
    """A storage URL that cannot be used (unknown scheme, missing driver, unreachable server)."""


def default_storage_url(run_dir: Path) -> str:
    return f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"


def check_storage_url(url: str) -> str:
    """The URL's scheme when d2m-nas knows it (connecting comes later); StorageError otherwise."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "journal":
        if not _journal_path(url):
            raise StorageError(f"journal storage URL {url!r} names no file; e.g. journal:runs/search/study.log")
        return scheme
    if scheme.split("+")[0] not in _RDB_SCHEMES or "://" not in url:
        raise StorageError(f"unknown storage URL {url!r}; {STORAGE_HELP}")
    return scheme


def _journal_path(url: str) -> str:
    path = url[len("journal:"):]
    return path[2:] if path.startswith("//") else path


def _sqlite_file(url: str) -> str:
    """The database file of a sqlite:/// URL; '' for an in-memory database."""
    path = url.split("///", 1)[1] if "///" in url else ""
    return "" if path == ":memory:" else path


def check_exists(url: str) -> None:
    """StorageError when a file storage (SQLite, journal) does not exist: for readers, which must not
    create an empty one. Servers are checked by connecting."""
    scheme = check_storage_url(url)
    path = _journal_path(url) if scheme == "journal" else _sqlite_file(url) if scheme == "sqlite" else ""
    if path and not Path(path).expanduser().is_file():
        raise StorageError(f"storage {hide_password(url)} does not exist (no file {path})")


def open_storage(url: str, heartbeat: int = 60) -> optuna.storages.BaseStorage:
    """The Optuna storage for a URL; StorageError with one line saying what to do."""
    scheme = check_storage_url(url)
    if scheme == "journal":
        path = _journal_path(url)
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(Path(path).expanduser())))
    url = sqlalchemy_url(url)
    engine_kwargs: dict = {"pool_pre_ping": True}
    if scheme == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": 60}}
        if _sqlite_file(url):
            Path(_sqlite_file(url)).parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = _create_rdb_storage(url, engine_kwargs, heartbeat)
        if scheme == "sqlite":
            fast_sqlite(storage.engine)
        return storage
    except ImportError:
        # SQLAlchemy 2.1 reaches postgresql:// through psycopg 3; +psycopg2 and mysql name their drivers.
        raise StorageError(f"storage URL {hide_password(url)} needs a database driver that is not installed; "
                           f"pip install {driver_package(url)}") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises many types; the message says enough
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if scheme == "sqlite" and any(word in first for word in ("already exists", "locked")):
            hint = "; several processes on one machine share a study through --storage journal:FILE.log"
        raise StorageError(f"cannot open storage {hide_password(url)}: {first}{hint}") from None


def _create_rdb_storage(url: str, engine_kwargs: dict, heartbeat: int, attempts: int = 5):
    """RDBStorage, retried when workers started together race to create Optuna's tables in a new
    database: the loser's CREATE fails (duplicate type or relation) although the schema now exists."""
    import sqlalchemy.exc

    def create():
        with quiet():
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback())

    for attempt in range(attempts - 1):
        try:
            return create()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 * (attempt + 1))
        except sqlalchemy.exc.OperationalError as exc:  # SQLite's form of the same race
            if "already exists" not in str(exc):
                raise
            time.sleep(0.2 * (attempt + 1))
    return create()
