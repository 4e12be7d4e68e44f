"""Which data files a command read, with their sha256, for its run's versions.json: the record of
what a figure was computed from (a re-downloaded or re-encoded CIFAR-10, another ground-truth
table) alongside the code and package versions.

Readers call `record_read(path)`; `data_files()` hashes what was read (once per file and process).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_read: dict[str, None] = {}  # resolved paths, in the order first read
_digests: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256


def record_read(path: str | Path) -> None:
    _read.setdefault(str(Path(path).resolve()), None)


def sha256_of(path: str | Path) -> str:
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def data_files() -> dict[str, dict]:
    """{path: {"sha256", "bytes"}} of every file recorded as read that still exists."""
    found = {}
    for path in _read:
        if Path(path).is_file():
            found[path] = {"sha256": sha256_of(path), "bytes": Path(path).stat().st_size}
    return found


def forget() -> None:
    """Start a new record (each command of a process that runs several, as the tests do)."""
    _read.clear()
