"""A user adds a search space, a proxy and a search backend from their own code, without editing
the package, and every command takes them by name."""

import pandas as pd
import pytest
from torch import nn

from d2m_nas.cli import main
from d2m_nas.proxies import Proxy, ProxyScore, list_proxies, register_proxy
from d2m_nas.proxies import _REGISTERED as PROXIES
from d2m_nas.search import SearchBackend, list_backends, register_backend
from d2m_nas.search.backends import _BACKENDS as BACKENDS
from search_spaces import registry
from search_spaces.base import SearchSpace


class ChainSpace(SearchSpace):
    """Eight MLP widths: a space of one choice."""

    name = "chains"
    WIDTHS = (1, 2, 4, 8, 16, 32, 64, 128)

    def enumerate(self) -> list[str]:
        return [f"w{w}" for w in self.WIDTHS]

    def parse(self, text: str) -> str:
        if text not in self.enumerate():
            raise ValueError(f"not a chain: {text!r}")
        return text

    def build(self, arch, num_classes=10, image_size=32, in_channels=3, **options) -> nn.Module:
        width = int(self.parse(arch)[1:])
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size * image_size, width), nn.ReLU(),
                             nn.Linear(width, num_classes))

    def choices(self) -> dict[str, list[str]]:
        return {"arch": self.enumerate()}

    def encode(self, arch: str) -> dict[str, str]:
        return {"arch": arch}

    def decode(self, params: dict) -> str:
        return self.parse(params["arch"])


class WidthProxy(Proxy):
    """Scores a chain by its width (a stand-in for a user's own proxy)."""

    name = "width"
    needs_data = False

    def score(self, arch, context) -> ProxyScore:
        return ProxyScore(float(arch[1:]), 0.0)


class InOrder(SearchBackend):
    """Evaluates the space's architectures in their listed order (a stand-in for a user's backend)."""

    name = "in-order"
    strategies = ("forward", "backward")

    def run(self, driver, run_dir, study):
        archs = driver.context.space.enumerate()
        for trial, arch in enumerate(archs if driver.config.strategy == "forward" else archs[::-1]):
            if trial == driver.config.trials:
                break
            driver.record([driver.row(study, trial, driver.evaluate(arch))])


@pytest.fixture
def registered():
    registry.register_space("chains", ChainSpace)
    register_proxy(WidthProxy)
    register_backend(InOrder)
    yield
    del registry._SPACES["chains"], PROXIES["width"], BACKENDS["in-order"]


def test_a_users_space_and_proxy_run_through_rank_and_search(registered, tmp_path, capsys):
    assert "chains" in registry.list_spaces() and "width" in list_proxies()
    truth = tmp_path / "truth.csv"
    pd.DataFrame({"arch": ChainSpace().enumerate(), "acc": [50 + i for i in range(8)]}).to_csv(truth, index=False)
    common = ["--space", "chains", "--ground-truth", "acc", "--ground-truth-file", str(truth), "--device", "cpu"]
    assert main(["rank", "--proxy", "width,params", "--sample", "8", "--bootstrap", "20", *common,
                 "--out", str(tmp_path / "rank")]) == 0
    results = pd.read_csv(tmp_path / "rank" / "results.csv")
    width = results[results["proxy"] == "width"].set_index("arch")["score"]
    assert width["w64"] == 64.0 and len(results) == 16
    assert "| width | 8 | 1 | +1.000" in capsys.readouterr().out  # n archs, seeds, then ρ
    assert main(["search", "--proxy", "width", "--trials", "4", "--strategy", "random", *common,
                 "--out", str(tmp_path / "search")]) == 0
    assert len(pd.read_csv(tmp_path / "search" / "results.csv")) == 4
    assert "in-order" in list_backends()
    assert main(["search", "--proxy", "width", "--trials", "3", "--backend", "in-order", "--strategy", "backward",
                 *common, "--out", str(tmp_path / "mine")]) == 0
    mine = pd.read_csv(tmp_path / "mine" / "results.csv")
    assert mine["arch"].tolist() == ["w128", "w64", "w32"] and (mine["backend"] == "in-order").all()
    assert main(["search", "--proxy", "width", "--backend", "in-order", "--pruner", "median", *common,
                 "--out", str(tmp_path / "no")]) == 2  # a backend without study options refuses them
    assert "work with the optuna backend" in capsys.readouterr().err


def test_registration_refuses_taken_names_and_non_proxies(registered):
    with pytest.raises(ValueError, match="registered already"):
        registry.register_space("chains", ChainSpace)
    with pytest.raises(ValueError, match="taken"):
        register_proxy(WidthProxy)
    with pytest.raises(ValueError, match="Proxy subclass"):
        register_proxy(dict)
    with pytest.raises(ValueError, match="SearchBackend subclass"):
        register_backend(dict)
