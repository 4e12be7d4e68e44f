import os
from pathlib import Path

import pytest
import torch

from d2m_nas.settings import DATA_ENV

# One thread: the tests run tiny models, where a second thread only adds synchronisation cost.
torch.set_num_threads(1)


@pytest.fixture
def shared_data_root() -> Path:
    """The real data under the product's data-root setting ($D2M_NAS_DATA); skips when absent."""
    root = os.environ.get(DATA_ENV)
    if not root or not Path(root).is_dir():
        pytest.skip(f"real data not available: set {DATA_ENV} to a directory holding cifar10/ and nb201/")
    return Path(root)


@pytest.fixture
def isolated_data_root(tmp_path, monkeypatch) -> Path:
    """An empty data root, so a test sees only the files it writes itself."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv(DATA_ENV, str(root))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return root
