"""Run directories: every run writes its resolved configuration and software versions."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml

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


def write_run_record(out: Path, config: dict, device: str) -> None:
    """config.yaml (reloadable with --config) and versions.json (what produced the run)."""
    out.mkdir(parents=True, exist_ok=True)
    plain = {k: (str(v) if isinstance(v, Path) else v) for k, v in config.items()}
    (out / "config.yaml").write_text(yaml.safe_dump(plain, sort_keys=True))
    record = versions() | {"device": device, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    # what a speed figure read from this run was measured on
    record["hardware"] = f"{cpu_model()}, {os.cpu_count()} logical CPUs"
    try:
        import torch

        record["threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            record["cuda_device"] = torch.cuda.get_device_name()
            record["hardware"] += f"; {torch.cuda.get_device_name()}"
    except Exception:  # noqa: BLE001 - versions are informative, never fatal
        pass
    (out / "versions.json").write_text(json.dumps(record, indent=2) + "\n")
