import pandas as pd
import pytest
import torch
from torch import nn

from search_spaces.nasbench201 import (NUM_ARCHS, NUM_ISOMORPHISM_CLASSES, OPS, ArchStringError, NASBench201Space,
                                       NB201Network, all_archs, arch_at, arch_index, format_arch,
                                       isomorphism_str, parse_arch)
from search_spaces.zero_cost import count_flops, count_params

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"



@pytest.mark.parametrize("text, fragment", [
    ("|nor_conv_3x3~0|+|skip_connect~0|none~1|", "expected 3 nodes"),
    ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown NAS-Bench-201 operation 'conv_5x5'"),
    ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 needs 2 incoming edge(s), found 1"),
    ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "must come from node 0"),
    ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 'none~0|' must be enclosed"),
    ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like 'op~j'"),
])
def test_malformed_strings_get_one_line_errors_naming_the_problem(text, fragment):
    with pytest.raises(ArchStringError) as info:
        parse_arch(text)
    message = str(info.value)
    assert fragment in message and "\n" not in message


def test_string_index_string_round_trip_for_all_architectures():
    archs = all_archs()
    assert len(archs) == NUM_ARCHS == 15625 and len(set(archs)) == NUM_ARCHS
    for i, arch in enumerate(archs):
        assert format_arch(parse_arch(arch)) == arch
        assert arch_index(arch) == i and arch_at(i) == arch


def test_index_order_matches_nasbench201_reference_asserts():
    # generate_meta_info in NAS-Bench-201's code asserts these three positions of its order
    assert arch_at(0) == "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert arch_at(9) == "|avg_pool_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
    assert arch_at(123) == "|avg_pool_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def test_isomorphism_classes_number_6466_and_merge_equivalent_cells():
    assert len({isomorphism_str(a) for a in all_archs()}) == NUM_ISOMORPHISM_CLASSES == 6466
    # node 2 feeds nothing when edge 2->3 is none, so its operations do not matter
    a = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    b = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"
    assert isomorphism_str(a) == isomorphism_str(b)
    assert isomorphism_str(a) != isomorphism_str(ALL_CONV3)


@pytest.mark.needs_shared_data
def test_index_and_isomorphism_agree_with_the_ground_truth_table(shared_data_root):
    table = pd.read_csv(shared_data_root / "nb201" / "nb201_ground_truth.csv")
    assert len(table) == NUM_ARCHS
    assert [arch_index(a) for a in table["arch_str"]] == table["nb201_index"].tolist()
    ours = table["arch_str"].map(isomorphism_str)
    assert (ours == table["isomorphism_str"]).all()  # same strings, hence the same partition
    partition = lambda key: set(table.groupby(key)["nb201_index"].apply(frozenset))  # noqa: E731
    assert partition(ours) == partition(table["isomorphism_str"])


@pytest.mark.parametrize("arch, classes, size, params, flops", [
    # NAS-Bench-201 v1_1 cost info, min/max over all cells (params in M, flops in M; as read from
    # NAS-Bench-201-v1_1-096897 {cifar10-valid, cifar100, ImageNet16-120}.json):
    # CIFAR-10 0.073306..1.531546 / 7.78305..220.11969; CIFAR-100 0.079156..1.537396 /
    # 7.7889..220.12554; ImageNet16-120 0.080456..1.538696 / 1.9534..55.03756
    (ALL_CONV3, 10, 32, 1_531_546, 220.11969),
    (ALL_NONE, 10, 32, 73_306, 7.78305),
    (ALL_CONV3, 100, 32, 1_537_396, 220.12554),
    (ALL_NONE, 100, 32, 79_156, 7.7889),
    (ALL_CONV3, 120, 16, 1_538_696, 55.03756),
    (ALL_NONE, 120, 16, 80_456, 1.9534),
    (BEST_C10, 10, 32, 1_073_466, None),  # index 6111, the best CIFAR-10 cell (our count, not a published figure)
])
def test_parameter_counts_and_flops_match_nasbench201(arch, classes, size, params, flops):
    model = NB201Network(arch, channels=16, cells_per_stage=5, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == params
    assert count_params(model) == pytest.approx(params / 1e6)
    if flops is not None:
        assert count_flops(model, (3, size, size)) == pytest.approx(flops, abs=1e-5)


@pytest.mark.parametrize("channels, cells, size", [(4, 1, 32), (8, 2, 16)])
def test_builder_shapes_and_structure(channels, cells, size):
    model = NB201Network(BEST_C10, channels=channels, cells_per_stage=cells, num_classes=7)
    out = model(torch.randn(3, 3, size, size))
    assert out.shape == (3, 7)
    assert model.embed(torch.randn(2, 3, size, size)).shape == (2, 4 * channels)
    assert len(model.cells) == 3 * cells + 2
    convs = [m for m in model.cells[0].ops if isinstance(m, nn.Sequential)]
    assert [type(m).__name__ for m in convs[0]] == ["ReLU", "Conv2d", "BatchNorm2d"]


def test_without_batchnorm_keeps_weights_and_reduction_bn_like_the_reference():
    space = NASBench201Space()
    model = space.build(ALL_CONV3, channels=4, cells_per_stage=1)
    copy = space.without_batchnorm(model, ALL_CONV3)
    names = {n for n, m in copy.named_modules() if isinstance(m, nn.BatchNorm2d)}
    assert names and all(".conv_" in n for n in names)  # only the reduction blocks keep BN
    assert torch.equal(copy.stem[0].weight, model.stem[0].weight)
    assert torch.equal(copy.cells[0].ops[0][1].weight, model.cells[0].ops[0][1].weight)


def test_space_contract_encode_decode_and_sampling():
    space = NASBench201Space()
    assert len(space) == NUM_ARCHS and space.enumerate()[0] == arch_at(0)
    assert all(values == OPS for values in space.choices().values()) and len(space.choices()) == 6
    params = space.encode(BEST_C10)
    assert space.decode(params) == BEST_C10 and params["edge_2_3"] == "nor_conv_1x1"
    first, again, other = space.sample(20, seed=1), space.sample(20, seed=1), space.sample(20, seed=2)
    assert first == again and first != other and len(set(first)) == 20
    with pytest.raises(ValueError, match="lacks edge_0_1"):
        space.decode({k: v for k, v in params.items() if k != "edge_0_1"})
    assert space.parse(" " + BEST_C10) == BEST_C10 and space.index(BEST_C10) == 6111
