import importlib.util
import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from d2m_nas.settings import DATA_ENV

# One thread: the tests run tiny models, where a second thread only adds synchronisation cost.
torch.set_num_threads(1)


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmark_script():
    """Imports a script of benchmarks/ by name, so a test can call its functions and `main`."""
    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


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


@pytest.fixture(scope="session")
def table(tmp_path_factory) -> Path:
    """A synthetic NAS-Bench-201 table of every cell: accuracy grows with the number of 3x3 convolutions."""
    from search_spaces.nasbench201 import all_archs, parse_arch

    archs = list(all_archs())
    accuracy = [50 + 5 * parse_arch(a).count("nor_conv_3x3") + (i % 7) * 0.1 for i, a in enumerate(archs)]
    path = tmp_path_factory.mktemp("gt") / "table.csv"
    pd.DataFrame({"nb201_index": range(len(archs)), "arch_str": archs, "cifar10_test_acc": accuracy,
                  "cifar10_test_acc_12ep": accuracy}).to_csv(path, index=False)
    return path
