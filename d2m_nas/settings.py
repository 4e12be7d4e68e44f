"""Where d2m-nas looks for data: --data-root, else $D2M_NAS_DATA, else the user cache directory."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "D2M_NAS_DATA"

# Images per class held out of the training set for proxy scoring and search (2,000 CIFAR-10
# images, as in docs/method.md section 3). Every command defaults to it, so all see the same split.
# It lives here, not in d2m_nas.data, so that building `--help` does not import torch.
DEFAULT_VAL_PER_CLASS = 200


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "d2m-nas"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The data root in order of precedence; the path need not exist yet (downloads create it)."""
    if data_root:
        return Path(data_root).expanduser()
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return default_cache_dir() / "data"


def describe_data_root_choice() -> str:
    """How to point d2m-nas at data, for error messages."""
    return f"pass --data-root DIR or set {DATA_ENV}=DIR"
