"""A score cache: one proxy score per (space, architecture, proxy configuration, seed).

Re-running a study or a search never scores the same thing twice, and a killed run resumes
with everything it finished. The cache is a database that several processes share: a SQLite
file (the default; processes on one machine) or a PostgreSQL URL (processes on many machines;
the same URL as a study's `--storage`, so one database holds all a study shares). A database,
not an append-only file, because a killed writer can never leave a torn record (a transaction
commits whole or not at all), a lookup is an indexed query, and `INSERT ... ON CONFLICT DO
NOTHING` on the primary key keeps the first score when two writers store the same one. SQLite
needs a local file system: on NFS use the PostgreSQL URL.

A score being computed is claimed (a row in `claims`: who computes it, renewed every
`beat_interval` seconds), so another process that needs it waits for it instead of computing it
again: rank workers and search workers sharing one cache train each architecture once. A claim
whose process died is taken over: at once when that process ran on this machine, after
`stale_after` seconds without renewal when it ran elsewhere, timed by the waiting process's own
monotonic clock from when it first saw that beat (machines' clocks are never compared, so a
claimant whose clock is ahead or behind is neither waited for forever nor taken over alive).

The key is the architecture's canonical string, the seed, and a hash of the proxy
configuration: the proxy's registered name, its implementation version (`Proxy.version`) and its
settings, plus what of the ProxyContext changes its score (space, model options, and for proxies
that read data the dataset, batch size and the train/validation split). Files a proxy reads (a
generator, a DM set) enter by their sha256, never their path. The device is recorded with each
score but is not part of the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import sqlalchemy
from sqlalchemy import Column, Float, Integer, MetaData, Table, Text, func, select

from d2m_nas.databases import (driver_package, fast_sqlite, hide_password, sqlalchemy_url,
                               url_scheme, worker_alive, worker_identity)
from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore

_METADATA = MetaData()
_SCORES = Table(
    "scores", _METADATA,
    *(Column(name, Text, primary_key=True) for name in ("space", "arch", "proxy_key")),
    Column("seed", Integer, primary_key=True),
    Column("proxy", Text, nullable=False), Column("score", Float), Column("seconds", Float, nullable=False),
    Column("extra", Text, nullable=False), Column("device", Text, nullable=False),
    Column("created", Float, nullable=False))
_CONFIGS = Table("proxy_configs", _METADATA, Column("proxy_key", Text, primary_key=True),
                 Column("config", Text, nullable=False))
_CLAIMS = Table(
    "claims", _METADATA,
    *(Column(name, Text, primary_key=True) for name in ("space", "arch", "proxy_key")),
    Column("seed", Integer, primary_key=True),
    Column("worker", Text, nullable=False), Column("beat", Float, nullable=False))
_TABLES = set(_METADATA.tables)
_DIALECT_INSERT = {"sqlite": "sqlalchemy.dialects.sqlite", "postgresql": "sqlalchemy.dialects.postgresql"}
_SERVERS = ("postgresql", "postgres")
CACHE_HELP = "give a file path (SQLite, one machine) or postgresql://USER:PASSWORD@HOST:PORT/DB (several machines)"


def default_cache(storage: str | None, run_dir: Path) -> str:
    """A study's cache when --cache is not given: its storage's database when that is a server
    (every machine of the study shares it), else RUN_DIR/cache.sqlite."""
    if storage is not None and url_scheme(storage) in _SERVERS:
        return storage
    return str(Path(run_dir) / "cache.sqlite")


class CacheError(ValueError):
    """The cache cannot be used (not SQLite, unreadable, another program's database, unreachable)."""


def _plain(value: Any, where: str) -> Any:
    """`value` as JSON-able data (dataclasses and tuples converted); TypeError for anything else."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{where} is a {type(value).__name__}, which the score cache cannot key on; give the "
                    "proxy a config() method returning its settings as plain data")


def proxy_settings(proxy: Proxy) -> dict:
    """The proxy's own settings: `proxy.config()` when it defines one, else its public attributes."""
    config = getattr(proxy, "config", None)
    if callable(config):
        return _plain(config(), f"{proxy.name}.config()")
    public = {k: v for k, v in vars(proxy).items() if not k.startswith("_") and k not in ("name", "needs_data")}
    return _plain(public, proxy.name or type(proxy).__name__)


def proxy_config(proxy: Proxy, context: ProxyContext) -> dict:
    """Everything that determines a proxy's score of an architecture, except the seed."""
    context = proxy.context_for(context)  # the network size it scores, its own where it sets one
    config = {"proxy": proxy.registered_name, "settings": proxy_settings(proxy), "space": context.space.name,
              "model_options": _plain(context.model_options, "model_options")}
    if proxy.version != 1:
        config["version"] = int(proxy.version)
    if proxy.needs_data:
        config["dataset"] = context.dataset.name if context.dataset is not None else None
        if proxy.uses_context_batch:
            config["batch_size"] = context.batch_size
        if context.train_indices is not None:  # which images the batch may come from
            config["train_pool"] = _indices_hash(context.train_indices)
        if context.val_indices is not None:  # which images a training-based proxy is scored on
            config["val_pool"] = _indices_hash(context.val_indices)
    return config


def _indices_hash(indices) -> str:
    return hashlib.sha256(indices.cpu().numpy().tobytes()).hexdigest()[:16]


def config_key(config: dict) -> str:
    """A short stable hash of a configuration (canonical JSON)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class CachedScore:
    score: ProxyScore
    hit: bool  # True when the score came from the cache (nothing was computed)


class ScoreCache:
    """Proxy scores in a SQLite file or a PostgreSQL database, safe to share between processes."""

    beat_interval = 30.0  # seconds between the renewals of a claim while its score is computed
    stale_after = 120.0  # a claim from another machine not renewed for this long is taken over
    poll = 0.5  # seconds between looks at a score another process is computing

    def __init__(self, location: str | Path) -> None:
        location = str(location)
        scheme = url_scheme(location)
        if scheme not in ("", "sqlite") + _SERVERS:
            raise CacheError(f"unknown score cache {hide_password(location)!r}; {CACHE_HELP}")
        self.location = hide_password(location)
        self._worker = json.dumps(worker_identity(), sort_keys=True)
        self._renewer: threading.Thread | None = None
        self._watched: dict[tuple, tuple[str, float, float]] = {}  # others' claims: (worker, beat, first seen)
        self._closed = threading.Event()
        if scheme in _SERVERS:
            self._engine = self._open_server(location)
        else:
            self._engine = self._open_file(Path(location.split("///", 1)[1] if scheme else location))
        self._insert = importlib.import_module(_DIALECT_INSERT[self._engine.dialect.name]).insert

    def _open_file(self, path: Path) -> sqlalchemy.Engine:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sqlalchemy.create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})
        try:
            tables = set(sqlalchemy.inspect(engine).get_table_names())
            if tables - _TABLES:  # never add our tables to someone else's database (an Optuna study.db, say)
                raise CacheError(f"{path} is not a d2m-nas score cache (it holds the tables "
                                 f"{', '.join(sorted(tables - _TABLES)[:4])}); pass a new or cache file to --cache")
            fast_sqlite(engine)  # after the check: WAL mode would change a foreign file
            _create_tables(engine)
        except sqlalchemy.exc.DatabaseError as exc:
            raise CacheError(f"score cache {path} is not a usable SQLite file ({_first_line(exc)}); "
                             "delete it or pass another cache path") from None
        except CacheError:
            engine.dispose()
            raise
        return engine

    def _open_server(self, url: str) -> sqlalchemy.Engine:
        try:
            engine = sqlalchemy.create_engine(sqlalchemy_url(url), pool_pre_ping=True)
            _create_tables(engine)
            with engine.connect() as connection:  # a `scores` table of another program has other columns
                connection.execute(select(_SCORES).limit(1)).all()
        except ImportError:
            raise CacheError(f"score cache {self.location} needs a database driver that is not installed; "
                             f"pip install {driver_package(url)}") from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            raise CacheError(f"cannot open score cache {self.location}: {_first_line(exc)}") from None
        return engine

    def close(self) -> None:
        self._closed.set()
        if self._renewer is not None:
            self._renewer.join()
        self._engine.dispose()

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        with self._engine.connect() as connection:
            return connection.execute(select(func.count()).select_from(_SCORES)).scalar_one()

    def _write(self, statement) -> None:
        """Run one statement in its own transaction."""
        with self._engine.begin() as connection:
            connection.execute(statement)

    def _where(self, table: Table, space: str, arch: str, key: str, seed: int):
        return ((table.c.space == space) & (table.c.arch == arch) & (table.c.proxy_key == key)
                & (table.c.seed == int(seed)))

    def get(self, space: str, arch: str, config: dict, seed: int) -> ProxyScore | None:
        return self._get(space, arch, config_key(config), seed)

    def _get(self, space: str, arch: str, key: str, seed: int) -> ProxyScore | None:
        query = select(_SCORES.c.score, _SCORES.c.seconds, _SCORES.c.extra).where(
            self._where(_SCORES, space, arch, key, seed))
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        score = math.nan if row[0] is None else float(row[0])
        return ProxyScore(score, float(row[1]), json.loads(row[2]))

    def put(self, space: str, arch: str, config: dict, seed: int, score: ProxyScore, device: str = "") -> ProxyScore:
        """Store a score unless one is there already; returns the stored one (the first writer wins)."""
        key = config_key(config)
        value = None if math.isnan(float(score.score)) else float(score.score)
        self._write(self._insert(_CONFIGS).values(proxy_key=key, config=json.dumps(config, sort_keys=True))
                    .on_conflict_do_nothing())
        self._write(self._insert(_SCORES).values(
            space=space, arch=arch, proxy_key=key, seed=int(seed), proxy=config["proxy"], score=value,
            seconds=float(score.seconds), extra=json.dumps(_plain(score.extra, "extra")), device=device,
            created=time.time()).on_conflict_do_nothing())
        stored = self._get(space, arch, key, seed)
        assert stored is not None
        return stored

    def entries(self, config: dict | None = None) -> list[dict]:
        """All stored scores (of one configuration when given), oldest first."""
        names = ("space", "arch", "proxy", "seed", "score", "seconds", "device")
        query = select(*(_SCORES.c[name] for name in names)).order_by(_SCORES.c.created)
        if config is not None:
            query = query.where(_SCORES.c.proxy_key == config_key(config))
        with self._engine.connect() as connection:
            return [dict(zip(names, row)) for row in connection.execute(query)]

    def lookup_or_compute(self, space: str, arch: str, seed: int, configs: dict[str, dict],
                          compute: Callable[[list[str]], dict[str, ProxyScore]], device: str = "",
                          claim: bool = True) -> dict[str, CachedScore]:
        """The score of `arch` under each named configuration: from the cache, else computed by
        `compute(names)` (several at once, as zero-cost proxies share a forward pass) and stored.
        With `claim`, one that another process is computing is waited for, not computed again
        (for costly proxies: a claim costs a few writes, more than a zero-cost score)."""
        keys = {name: config_key(config) for name, config in configs.items()}
        found = self._stored(space, arch, seed, keys, list(configs))
        while len(found) < len(configs):
            pending = [name for name in configs if name not in found]
            mine = [name for name in pending if not claim or self._claim(space, arch, keys[name], seed)]
            try:
                if claim:
                    found |= self._stored(space, arch, seed, keys, mine)  # stored between our look and our claim
                todo = [name for name in mine if name not in found]
                if todo:
                    computed = compute(todo)
                    found |= {name: CachedScore(self.put(space, arch, configs[name], seed, computed[name], device),
                                                hit=False) for name in todo}
            finally:
                if claim and mine:
                    self._release(space, arch, [keys[name] for name in mine], seed)
            if not mine:
                time.sleep(self.poll)
                found |= self._stored(space, arch, seed, keys, pending)
        return {name: found[name] for name in configs}

    def _stored(self, space: str, arch: str, seed: int, keys: dict[str, str],
                names: list[str]) -> dict[str, CachedScore]:
        scores = {name: self._get(space, arch, keys[name], seed) for name in names}
        return {name: CachedScore(score, hit=True) for name, score in scores.items() if score is not None}

    def _claim(self, space: str, arch: str, key: str, seed: int) -> bool:
        """Whether this process now computes the score; a dead claimant's claim is dropped, to be
        claimed on the next look. (Read back rather than trusting the insert's row count, which
        psycopg does not report for ON CONFLICT DO NOTHING.)"""
        where = self._where(_CLAIMS, space, arch, key, seed)
        self._write(self._insert(_CLAIMS).values(space=space, arch=arch, proxy_key=key, seed=int(seed),
                                                 worker=self._worker, beat=time.time()).on_conflict_do_nothing())
        with self._engine.connect() as connection:
            claim = connection.execute(select(_CLAIMS.c.worker, _CLAIMS.c.beat).where(where)).first()
        if claim is None:  # released since: look again
            return False
        if claim.worker == self._worker:
            self._renew_claims()
            return True
        alive = worker_alive(json.loads(claim.worker))
        silent = self._unrenewed_for((space, arch, key, seed), claim) if alive is None else 0.0
        if alive is False or silent > self.stale_after:
            stale = where & (_CLAIMS.c.worker == claim.worker) & (_CLAIMS.c.beat == claim.beat)
            self._write(_CLAIMS.delete().where(stale))
            self._watched.pop((space, arch, key, seed), None)
        return False

    def _unrenewed_for(self, item: tuple, claim) -> float:
        """Seconds since this process first saw `claim` with its current beat: the beat is compared
        only with itself, never with this machine's time, which may differ from the claimant's."""
        now = time.monotonic()
        seen = self._watched.get(item)
        if seen is None or seen[:2] != (claim.worker, claim.beat):
            self._watched[item] = (claim.worker, claim.beat, now)
            return 0.0
        return now - seen[2]

    def _release(self, space: str, arch: str, keys: list[str], seed: int) -> None:
        for key in keys:
            self._write(_CLAIMS.delete().where(self._where(_CLAIMS, space, arch, key, seed)
                                               & (_CLAIMS.c.worker == self._worker)))

    def _renew_claims(self) -> None:
        """Start renewing this process's claims every `beat_interval` seconds, once (another machine
        cannot see whether this process is alive, only that its claims stay fresh)."""
        if self._renewer is not None:
            return

        def renew() -> None:
            while not self._closed.wait(self.beat_interval):
                with contextlib.suppress(sqlalchemy.exc.SQLAlchemyError):  # a missed beat is not fatal
                    self._write(_CLAIMS.update().where(_CLAIMS.c.worker == self._worker).values(beat=time.time()))

        self._renewer = threading.Thread(target=renew, name="score-cache-claims", daemon=True)
        self._renewer.start()

    def score(self, proxy: Proxy, arch: str, context: ProxyContext, **options) -> CachedScore:
        """The proxy's score of `arch` in `context`: from the cache, else computed (`proxy.score(arch,
        context, **options)`) and stored; either way scored by the proxy's rule (`Proxy.rescored`)."""
        cached = self.lookup_or_compute(
            context.space.name, arch, context.seed, {proxy.name: proxy_config(proxy, context)},
            lambda names: {proxy.name: proxy.score(arch, proxy.context_for(context), **options)},
            str(context.device), claim=proxy.costly)[proxy.name]
        return CachedScore(proxy.rescored(cached.score), hit=cached.hit)


def _create_tables(engine: sqlalchemy.Engine) -> None:
    """The cache's tables, where missing. Processes started together race to create them (each sees
    a table missing, one creates it, the others' CREATE fails with "already exists"): look again."""
    for attempt in range(5):
        try:
            _METADATA.create_all(engine)
            return
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
