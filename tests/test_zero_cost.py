import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.errors import UserError
from d2m_nas.proxies import ProxyContext, ZeroCostProxy, create_proxy, score_architecture, score_zero_cost
from search_spaces import zero_cost as zc
from search_spaces.nasbench201 import NASBench201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
DEAD = "|none~0|+|nor_conv_3x3~0|none~1|+|none~0|skip_connect~1|none~2|"  # no path from input to output



def tiny_nb201(arch=ARCH, seed=0):
    torch.manual_seed(seed)
    return NASBench201Space().build(arch, num_classes=5, in_channels=3, channels=4, cells_per_stage=1)


def batch(n=8, size=16, classes=5):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(n, 3, size, size, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def test_params_and_flops_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    assert zc.count_params(model) == pytest.approx((3 * 4 * 9 + 256 * 2 + 2) / 1e6)
    # conv: 4*8*8 outputs x 27 MACs; linear: 2 outputs x 256 MACs + 2 bias adds
    assert zc.count_flops(model, (3, 8, 8)) == pytest.approx((256 * 27 + 2 * 256 + 2) / 1e6)


def test_synflow_of_a_linear_layer_is_the_sum_of_absolute_weights_and_leaves_the_model_alone():
    layer = nn.Linear(4, 3, bias=False)
    before = layer.weight.detach().clone()
    # R = sum_j sum_i |w_ji| * 1, so dR/dw_ji = sign-free 1 and synflow = sum |w|
    assert zc.synflow(layer, (4,)) == pytest.approx(float(before.double().abs().sum()), rel=1e-12)
    assert torch.equal(layer.weight, before) and layer.weight.dtype == torch.float32


def test_synflow_two_layers_by_hand():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        net[2].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    w1, w2 = net[0].weight.detach().abs().double(), net[2].weight.detach().abs().double()
    hidden = w1 @ torch.ones(2, dtype=torch.float64)
    expected = (w2 * hidden).sum() + (w1 * (w2.t() @ torch.ones(1, 2, dtype=torch.float64))).sum()
    assert zc.synflow(net, (2,)) == pytest.approx(float(expected))


def test_snip_and_grad_norm_match_autograd():
    model = tiny_nb201()
    images, labels = batch()
    reference = copy.deepcopy(model).train()
    nn.functional.cross_entropy(reference(images), labels).backward()
    # layers on a dead end (here the 1x1 conv into node 2, whose only way out is `none`) get no gradient
    layers = [m for m in reference.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.grad is not None]
    snip = sum(float((m.weight.detach() * m.weight.grad).abs().sum()) for m in layers)
    norm = sum(float(m.weight.grad.norm()) for m in layers)
    assert zc.snip(copy.deepcopy(model), images, labels) == pytest.approx(snip, rel=1e-5)
    assert zc.grad_norm(copy.deepcopy(model), images, labels) == pytest.approx(norm, rel=1e-5)


def test_one_shared_pass_equals_separate_passes():
    images, labels = batch()
    together = zc.batch_metrics(tiny_nb201(), images, labels)
    assert set(together) == set(zc.BATCH_METRICS)
    assert together["snip"] == pytest.approx(zc.snip(tiny_nb201(), images, labels), rel=1e-5)
    assert together["jacob_cov"] == pytest.approx(zc.jacob_cov(tiny_nb201(), images), rel=1e-6)
    assert together["naswot"] == pytest.approx(zc.naswot(tiny_nb201(), images), rel=1e-9)
    with pytest.raises(ValueError, match="unknown batch metric"):
        zc.batch_metrics(tiny_nb201(), images, labels, ("fisher",))


def test_jacob_cov_by_hand_and_nan_when_output_ignores_input():
    n, k = 6, 1e-5
    # a linear map has the same input-gradient for every sample: correlation matrix of ones,
    # eigenvalues n, 0, ..., 0
    score = zc.jacob_cov(nn.Linear(12, 3), torch.randn(n, 12))
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert score == pytest.approx(expected, rel=1e-6)
    images, _ = batch()
    assert math.isnan(zc.jacob_cov(tiny_nb201(DEAD), images))
    assert math.isnan(zc.jacob_cov_score(torch.zeros(4, 10)))


def test_naswot_kernel_by_hand():
    x = torch.tensor([[1.0, -1.0, 2.0], [1.0, 1.0, -3.0], [-1.0, -1.0, 1.0]])
    codes = (x > 0).double().numpy()
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    assert zc.naswot(nn.Sequential(nn.ReLU()), x) == pytest.approx(np.linalg.slogdet(kernel)[1])


def test_every_proxy_scores_a_tiny_model_through_the_interface():
    space = NASBench201Space()
    context = ProxyContext(space=space, dataset=make_fake_dataset(num_classes=5, train_per_class=4, test_per_class=1,
                                                                  image_size=16),
                           batch_size=8, seed=3, model_options={"channels": 4, "cells_per_stage": 1})
    names = ["params", "flops", "synflow", "snip", "grad_norm", "jacob_cov", "naswot"]
    scores = score_architecture(ARCH, [create_proxy(n) for n in names], context)
    assert list(scores) == names
    for name, result in scores.items():
        assert math.isfinite(result.score) and result.seconds >= 0, name
    alone = ZeroCostProxy("synflow").score(ARCH, context)
    assert alone.score == pytest.approx(scores["synflow"].score)  # weights depend only on (seed, arch)
    assert score_zero_cost(ARCH, ["snip"], context)["snip"].score == pytest.approx(scores["snip"].score, rel=1e-5)
    assert scores["snip"].extra == {"shared_pass": "snip,grad_norm,jacob_cov,naswot"}
    bigger = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    assert ZeroCostProxy("params").score(bigger, context).score > scores["params"].score
    with pytest.raises(UserError, match="unknown proxy 'fisher'"):
        create_proxy("fisher")


def test_proxy_batches_come_only_from_the_training_part_of_the_split():
    from d2m_nas.data import split_train_val
    from d2m_nas.data.sources import make_fake_dataset
    from d2m_nas.proxies import ProxyContext
    from search_spaces.registry import create_space

    dataset = make_fake_dataset(train_per_class=12, test_per_class=1)
    dataset.x_train = torch.arange(len(dataset.y_train), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 32, 32).contiguous()
    train_idx, val_idx = split_train_val(dataset.y_train, 6, seed=0)
    context = ProxyContext(space=create_space("nasbench201"), dataset=dataset, batch_size=60, train_indices=train_idx)
    images, labels = context.batch()
    # each image's pixel value is its index: recover which images were drawn
    drawn = set(dataset.denormalize(images)[:, 0, 0, 0].mul(255).round().long().tolist())
    assert drawn == set(train_idx.tolist()) and not drawn & set(val_idx.tolist())
    assert torch.equal(labels.sort().values, dataset.y_train[train_idx].sort().values)


def test_a_cell_without_a_path_from_input_to_output_is_scored_by_the_shared_pass():
    """Skipped `none` edges must not cut the output from the input's graph (the shared pass takes
    input gradients for jacob_cov)."""
    context = ProxyContext(space=NASBench201Space(), dataset=make_fake_dataset(num_classes=5, train_per_class=4,
                                                                               test_per_class=1, image_size=16),
                           batch_size=8, model_options={"channels": 4, "cells_per_stage": 1})
    names = ["snip", "grad_norm", "jacob_cov", "naswot"]
    scores = score_architecture(DEAD, [create_proxy(n) for n in names], context)
    assert math.isnan(scores["jacob_cov"].score) and math.isfinite(scores["naswot"].score)
