import json

import pandas as pd
import pytest
import torch

from d2m_nas.cli import main
from search_spaces.convnet_space import ConvNetSpace
from search_spaces.registry import create_space, list_spaces


def test_720_distinct_architectures_with_round_trips():
    space = create_space("convnet720")
    archs = space.enumerate()
    assert len(space) == len(archs) == len(set(archs)) == 720 and "convnet720" in list_spaces()
    for i, arch in enumerate(archs[::37]):
        assert space.parse(arch) == arch and space.index(arch) == archs.index(arch)
        assert space.decode(space.encode(arch)) == arch
    assert space.choices()["width"] == (32, 64, 128, 256)
    assert space.sample(5, seed=0) == space.sample(5, seed=0)


def test_bad_strings_are_rejected():
    space = ConvNetSpace()
    with pytest.raises(ValueError, match="malformed ConvNet string"):
        space.parse("convnet-3-128")
    with pytest.raises(ValueError, match="not in the 720-network space"):
        space.parse("convnet-d3-w16-relu-instancenorm-avgpool")
    with pytest.raises(ValueError, match="takes no build options"):
        space.build("convnet-d1-w32-relu-none-none", channels=4)


@pytest.mark.parametrize("arch", ["convnet-d1-w32-sigmoid-batchnorm-maxpool", "convnet-d4-w64-relu-layernorm-none"])
def test_build_shapes(arch):
    model = ConvNetSpace().build(arch, num_classes=7, image_size=16, in_channels=1)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 7)
    no_bn = ConvNetSpace().without_batchnorm(model, arch)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in no_bn.modules())


def test_rank_convnets_against_a_results_file(tmp_path):
    space = ConvNetSpace()
    archs = space.enumerate()
    results = tmp_path / "full_training.csv"
    pd.DataFrame({"arch": archs, "accuracy": [space.encode(a)["width"] + space.encode(a)["depth"] for a in archs]}
                 ).to_csv(results, index=False)
    out = tmp_path / "run"
    assert main(["rank", "--space", "convnet720", "--proxy", "params", "--sample", "8", "--ground-truth",
                 "accuracy", "--ground-truth-file", str(results), "--out", str(out), "--device", "cpu",
                 "--bootstrap", "20"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"] == "convnet720" and summary["truth_column"] == "accuracy"
    correlation = summary["proxies"]["params"]["correlation"]
    assert correlation["n"] == 8 and correlation["spearman"]["value"] > 0.5
