"""Run directories: one command's outputs, its resolved configuration and the software that made them.

A run directory is claimed before anything is written into it: it must be new, empty, or made by the
same command (its config.yaml says which); it is locked, so a second process cannot write the same
run (`search` workers share a study and take a shared lock); and the record files are written
atomically. If the command then fails, `roll_back` leaves the directory as it was: a directory this
process created and left holding nothing but its record is removed, an existing run's record restored.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

from d2m_nas.errors import UserError
from distill.atomic import atomic_write, atomic_write_text

CONFIG, VERSIONS, LOCK = "config.yaml", "versions.json", ".lock"
RECORD_FILES = (CONFIG, VERSIONS)
_VERSIONED = ("d2m-nas", "torch", "torchvision", "numpy", "scipy", "pandas", "optuna", "nni")


def default_run_dir(command: str) -> Path:
    return Path("runs") / command / time.strftime("%Y%m%d-%H%M%S")


def versions() -> dict:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def recorded_config(path: Path) -> dict:
    """The options the run directory `path` was last run with (its config.yaml), or {} if none is readable."""
    try:
        config = yaml.safe_load((path / CONFIG).read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return config if isinstance(config, dict) else {}


def recorded_command(path: Path) -> str | None:
    """The command that made the run directory `path` (its config.yaml's `command`), or None."""
    return recorded_config(path).get("command")


class RunDirectory:
    """A claimed --out: checked, created and locked; records its previous state so a failure can undo."""

    def __init__(self, path: Path, command: str, shared: bool = False) -> None:
        self.path, self.command = Path(path), command
        self._check()
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / LOCK, "a+")  # also proves the directory is writable
        except OSError as exc:
            raise UserError(f"cannot write the run directory {self.path}: {exc.strerror}; "
                            "choose a writable --out") from None
        try:
            fcntl.flock(self._lock, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise UserError(f"another d2m-nas process is writing {self.path}; wait for it to finish "
                            "or choose another --out (nothing was changed)") from None
        self._previous = {name: (self.path / name).read_bytes() if (self.path / name).is_file() else None
                          for name in RECORD_FILES}

    def _check(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path} is a file, not a run directory; choose a directory")
        if not path.is_dir():
            return
        owner = recorded_command(path)
        if owner is None and set(os.listdir(path)) - {LOCK}:
            raise UserError(f"--out {path} is not empty and holds no d2m-nas run (no readable {CONFIG}); "
                            "choose a new or empty directory (nothing was changed)")
        if owner is not None and owner != self.command:
            raise UserError(f"{path} is a `d2m-nas {owner}` run directory; `d2m-nas {self.command}` does not "
                            "write into it (nothing was changed): choose another --out")

    def write_record(self, config: dict, device: str) -> None:
        """config.yaml (reloadable with --config) and versions.json (what produced the run)."""
        plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.items()}
        atomic_write_text(self.path / CONFIG, yaml.safe_dump(plain | {"command": self.command}, sort_keys=True))
        atomic_write_text(self.path / VERSIONS, json.dumps(run_versions(device), indent=2) + "\n")

    def record_data_files(self, files: dict[str, dict]) -> None:
        """Add the data files the command read, with their sha256, to versions.json (at its end,
        when every input has been read)."""
        path = self.path / VERSIONS
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        atomic_write_text(path, json.dumps(record | {"data_files": files}, indent=2) + "\n")

    def roll_back(self) -> None:
        """After a failed command: remove a directory this process made if it holds only the record,
        else put the previous record back. Best effort: the failure being reported matters more."""
        try:
            if self.created:
                if set(os.listdir(self.path)) <= {*RECORD_FILES, LOCK}:
                    for name in (*RECORD_FILES, LOCK):
                        (self.path / name).unlink(missing_ok=True)
                    self.path.rmdir()
                return
            for name, content in self._previous.items():
                if content is None:
                    (self.path / name).unlink(missing_ok=True)
                elif (self.path / name).read_bytes() != content:
                    atomic_write(self.path / name, lambda handle, content=content: handle.write(content))
        except OSError:
            pass

    def release(self) -> None:
        self._lock.close()


def hardware() -> str:
    """The CPU, its logical CPUs, and the GPU when there is one: where seconds were measured."""
    text = f"{cpu_model()}, {os.cpu_count()} logical CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            text += f"; {torch.cuda.get_device_name()}"
    except Exception:  # noqa: BLE001 - informative, never fatal
        pass
    return text


def run_versions(device: str) -> dict:
    record = versions() | {"device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    record["hardware"] = hardware()  # what a speed figure read from this run was measured on
    try:
        import torch

        record["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            record["cuda_device"] = torch.cuda.get_device_name()
            record["cuda"], record["cudnn"] = torch.version.cuda, torch.backends.cudnn.version()
    except Exception:  # noqa: BLE001 - versions are informative, never fatal
        pass
    record["code"] = code_revision()
    return record


def code_revision() -> str | None:
    """The git commit of the d2m-nas source that ran ("+dirty" with uncommitted changes), or None
    for an installed copy outside a checkout: which code a figure came from."""
    source = Path(__file__).resolve().parents[1]
    try:
        found = subprocess.run(["git", "-C", str(source), "rev-parse", "--show-toplevel", "HEAD"],
                               capture_output=True, text=True, timeout=10)
        lines = found.stdout.splitlines()
        if found.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != source:
            return None  # not a checkout of d2m-nas itself (e.g. installed into a venv inside another repo)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return lines[1] + ("+dirty" if dirty else "")


DISK_ERRORS = {errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space",
               errno.EFBIG: "free some disk space or lift the file-size limit",
               errno.EACCES: "make it writable", errno.EPERM: "make it writable", errno.EROFS: "make it writable"}


def disk_error_message(exc: OSError) -> str | None:
    """One line for a write failure a user can fix (full disk, no permission), else None."""
    fix = DISK_ERRORS.get(exc.errno)
    if fix is None:
        return None
    where = f" ({exc.filename})" if exc.filename else ""
    return f"{exc.strerror}{where}: {fix}, or choose another --out (finished work is kept)"
