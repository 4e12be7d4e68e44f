"""A score cache: one proxy score per (space, architecture, proxy configuration, seed).

Re-running a study or a search never scores the same thing twice, and a killed run resumes
with everything it finished. The cache is a SQLite file (stdlib `sqlite3`), chosen over an
append-only JSONL file because several processes share it safely (SQLite locks the file for
each write transaction; `INSERT OR IGNORE` on the primary key keeps the first score when two
workers finish the same architecture at once), a killed writer can never leave a torn record
(a transaction commits whole or not at all), and a lookup is an indexed query instead of a
re-read of the whole file. SQLite needs a local file system: on NFS give each machine its own
cache (the search storage, not the cache, is what several machines share).

The key is the architecture's canonical string, the seed, and a hash of the proxy
configuration: the proxy's registered name, its implementation version (`Proxy.version`) and its
settings, plus what of the ProxyContext changes its score (space, model options, and for proxies
that read data the dataset, batch size and the train/validation split). Files a proxy reads (a
generator, a DM set) enter by their sha256, never their path. The device is recorded with each
score but is not part of the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    space TEXT NOT NULL,
    arch TEXT NOT NULL,
    proxy_key TEXT NOT NULL,
    seed INTEGER NOT NULL,
    proxy TEXT NOT NULL,
    score REAL,
    seconds REAL NOT NULL,
    extra TEXT NOT NULL,
    device TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (space, arch, proxy_key, seed)
);
CREATE TABLE IF NOT EXISTS proxy_configs (proxy_key TEXT PRIMARY KEY, config TEXT NOT NULL);
"""
_TABLES = {"scores", "proxy_configs"}


class CacheError(ValueError):
    """The cache file cannot be used (not SQLite, unreadable)."""


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
    """Proxy scores in a SQLite file, safe to share between processes on one machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Autocommit: every statement is its own transaction; 60 s to wait for another writer.
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables - _TABLES:  # never add our tables to someone else's database (an Optuna study.db, say)
                self._db.close()
                raise CacheError(f"{self.path} is not a d2m-nas score cache (it holds the tables "
                                 f"{', '.join(sorted(tables - _TABLES)[:4])}); pass a new or cache file to --cache")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"score cache {self.path} is not a usable SQLite file ({exc}); "
                             "delete it or pass another cache path") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def get(self, space: str, arch: str, config: dict, seed: int) -> ProxyScore | None:
        return self._get(space, arch, config_key(config), seed)

    def _get(self, space: str, arch: str, key: str, seed: int) -> ProxyScore | None:
        row = self._db.execute("SELECT score, seconds, extra FROM scores WHERE space=? AND arch=? AND proxy_key=? "
                               "AND seed=?", (space, arch, key, int(seed))).fetchone()
        if row is None:
            return None
        score = math.nan if row[0] is None else float(row[0])
        return ProxyScore(score, float(row[1]), json.loads(row[2]))

    def put(self, space: str, arch: str, config: dict, seed: int, score: ProxyScore, device: str = "") -> ProxyScore:
        """Store a score unless one is there already; returns the stored one (the first writer wins)."""
        key = config_key(config)
        value = None if math.isnan(float(score.score)) else float(score.score)
        self._db.execute("INSERT OR IGNORE INTO proxy_configs VALUES (?, ?)", (key, json.dumps(config, sort_keys=True)))
        self._db.execute("INSERT OR IGNORE INTO scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (space, arch, key, int(seed), config["proxy"], value, float(score.seconds),
                          json.dumps(_plain(score.extra, "extra")), device, time.time()))
        stored = self._get(space, arch, key, seed)
        assert stored is not None
        return stored

    def entries(self, config: dict | None = None) -> list[dict]:
        """All stored scores (of one configuration when given), oldest first."""
        query = "SELECT space, arch, proxy, seed, score, seconds, device FROM scores"
        params: tuple = ()
        if config is not None:
            query += " WHERE proxy_key=?"
            params = (config_key(config),)
        names = ("space", "arch", "proxy", "seed", "score", "seconds", "device")
        return [dict(zip(names, row)) for row in self._db.execute(query + " ORDER BY created", params)]

    def score(self, proxy: Proxy, arch: str, context: ProxyContext, **options) -> CachedScore:
        """The proxy's score of `arch` in `context`: from the cache, else computed (`proxy.score(arch,
        context, **options)`) and stored; either way scored by the proxy's rule (`Proxy.rescored`)."""
        config = proxy_config(proxy, context)
        space = context.space.name
        found = self.get(space, arch, config, context.seed)
        if found is not None:
            return CachedScore(proxy.rescored(found), hit=True)
        computed = proxy.score(arch, proxy.context_for(context), **options)
        stored = self.put(space, arch, config, context.seed, computed, str(context.device))
        return CachedScore(proxy.rescored(stored), hit=False)
