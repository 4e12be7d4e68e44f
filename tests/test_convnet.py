import dataclasses
import itertools

import pytest
import torch
import torch.nn.functional as F

from search_spaces.convnet import (ACTIVATIONS, DEPTHS, NORMS, POOLINGS, WIDTHS, ConvNet, ConvNetSpec,
                                   create_convnet, default_depth_for, enumerate_convnet_space)


def test_space_has_720_distinct_networks_whose_strings_round_trip():
    space = enumerate_convnet_space()
    assert len(space) == 720 == len(set(space))
    assert {s.depth for s in space} == set(DEPTHS) and {s.width for s in space} == set(WIDTHS)
    for spec in space:
        assert ConvNetSpec.parse(str(spec)) == spec


def test_default_is_the_fields_convnet3():
    spec = ConvNetSpec()
    assert str(spec) == "convnet-d3-w128-relu-instancenorm-avgpool"
    net = create_convnet()
    # 3 convs (3->128, 128->128 twice) + 3 affine instance norms + linear 128*4*4 -> 10
    assert sum(p.numel() for p in net.parameters()) == 3584 + 2 * 147584 + 3 * 256 + 2048 * 10 + 10


def test_every_variant_without_width_builds_and_runs_at_small_width():
    x = torch.randn(2, 3, 16, 16)  # 16x16 still allows four 2x2 poolings
    for depth, act, norm, pool in itertools.product(DEPTHS, ACTIVATIONS, NORMS, POOLINGS):
        net = ConvNet(ConvNetSpec(depth, 4, act, norm, pool), channels=3, num_classes=10, image_size=16)
        with torch.no_grad():  # a training step is tested on the covering subset below
            out = net(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all(), (depth, act, norm, pool)


def _covering_subset():
    """15 specs in which every depth, activation, norm and pooling value occurs."""
    return [ConvNetSpec(DEPTHS[i % 4], 8, ACTIVATIONS[i % 3], NORMS[i % 5], POOLINGS[(i // 5) % 3])
            for i in range(15)]


def test_covering_subset_covers_every_value():
    subset = _covering_subset()
    assert {s.depth for s in subset} == set(DEPTHS) and {s.activation for s in subset} == set(ACTIVATIONS)
    assert {s.norm for s in subset} == set(NORMS) and {s.pooling for s in subset} == set(POOLINGS)


@pytest.mark.parametrize("spec", _covering_subset(), ids=str)
def test_representative_variants_train_a_step(spec):
    torch.manual_seed(0)
    net = create_convnet(spec, channels=3, num_classes=10, image_size=32)
    x, y = torch.randn(8, 3, 32, 32), torch.arange(8) % 10
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("width", WIDTHS)
def test_every_width_builds(width):
    net = create_convnet(ConvNetSpec(width=width), image_size=32)
    assert net.embedding_dim == width * 4 * 4 and net(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("pool,side", [("avgpool", 4), ("maxpool", 4), ("none", 32)])
def test_embed_and_block_outputs_shapes(pool, side):
    net = create_convnet(ConvNetSpec(3, 16, "relu", "instancenorm", pool), num_classes=7)
    x = torch.randn(5, 3, 32, 32)
    blocks = net.block_outputs(x)
    sides = [16, 8, 4] if pool != "none" else [32, 32, 32]
    assert [tuple(b.shape) for b in blocks] == [(5, 16, s, s) for s in sides]
    emb = net.embed(x)
    assert emb.shape == (5, 16 * side * side) == (5, net.embedding_dim)
    assert torch.allclose(emb, blocks[-1].flatten(1))
    assert torch.allclose(net(x), net.classifier(emb))


def test_depth5_runs_at_128x128_and_the_default_depth_follows_image_size():
    assert [default_depth_for(s) for s in (28, 32, 64, 128)] == [3, 3, 4, 5]
    net = create_convnet(ConvNetSpec(5, 8), channels=3, num_classes=200, image_size=128)
    blocks = net.block_outputs(torch.randn(2, 3, 128, 128))
    assert [b.shape[-1] for b in blocks] == [64, 32, 16, 8, 4]
    assert net(torch.randn(2, 3, 128, 128)).shape == (2, 200) and net.embedding_dim == 8 * 4 * 4


def test_28x28_grayscale_is_padded_to_32_like_the_dc_code():
    net = create_convnet(ConvNetSpec(3, 8), channels=1, num_classes=10, image_size=28)
    assert [b.shape[-1] for b in net.block_outputs(torch.randn(2, 1, 28, 28))] == [16, 8, 4]
    assert net.embedding_dim == 8 * 4 * 4


@pytest.mark.parametrize("text", ["convnet-d3-w128-relu-instancenorm", "convnet-3-128-relu-instancenorm-avgpool",
                                  "resnet18", "", "convnet-d3-w128-relu-instancenorm-avgpool-extra"])
def test_malformed_strings_are_value_errors(text):
    with pytest.raises(ValueError, match="malformed ConvNet string"):
        ConvNetSpec.parse(text)


@pytest.mark.parametrize("text,match", [("convnet-d6-w128-relu-instancenorm-avgpool", "depth"),
                                        ("convnet-d0-w128-relu-instancenorm-avgpool", "depth"),
                                        ("convnet-d3-w0-relu-instancenorm-avgpool", "width"),
                                        ("convnet-d3-w128-gelu-instancenorm-avgpool", "activation"),
                                        ("convnet-d3-w128-relu-rmsnorm-avgpool", "norm"),
                                        ("convnet-d3-w128-relu-instancenorm-sumpool", "pooling")])
def test_out_of_space_values_name_the_field(text, match):
    with pytest.raises(ValueError, match=match):
        ConvNetSpec.parse(text)


def test_parse_ignores_case_and_surrounding_space():
    assert ConvNetSpec.parse("  ConvNet-D4-W64-ReLU-BatchNorm-MaxPool ") == ConvNetSpec(4, 64, "relu", "batchnorm", "maxpool")


def test_too_many_poolings_for_the_input_is_a_value_error():
    with pytest.raises(ValueError, match="too deep"):
        create_convnet(ConvNetSpec(5, 8), image_size=16)


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConvNetSpec().depth = 4  # type: ignore[misc]
