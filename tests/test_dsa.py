import pytest
import torch

from distill.dsa import DEFAULT_STRATEGY, DSA, OPS, DSAConfig


def _images(n=6, size=16, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_default_strategy_is_the_fields_six_ops_single_mode():
    assert DSAConfig().ops() == ["color", "crop", "cutout", "flip", "scale", "rotate"]
    assert DSAConfig().strategy == DEFAULT_STRATEGY and DSAConfig().mode == "single"


@pytest.mark.parametrize("mode", ["single", "all"])
@pytest.mark.parametrize("shared", [False, True])
def test_shapes_are_preserved(mode, shared):
    x = _images(5, 16)
    y = DSA(DSAConfig(mode=mode))(x, generator=_gen(), shared=shared)
    assert y.shape == x.shape and y.dtype == x.dtype and torch.isfinite(y).all()


def test_single_mode_draws_exactly_one_op_group_and_all_mode_draws_every_one():
    single = DSA(DSAConfig(mode="single"))
    seen = {tuple(single.sample(4, 16, "cpu", _gen(s)).ops) for s in range(60)}
    assert all(len(ops) == 1 for ops in seen) and {ops[0] for ops in seen} == set(OPS)
    assert DSA(DSAConfig(mode="all")).sample(4, 16, "cpu", _gen()).ops == list(OPS)


@pytest.mark.parametrize("op", OPS)
def test_each_op_changes_the_image(op):
    x = _images(8, 16)
    dsa = DSA(DSAConfig(strategy=op))
    draw = dsa.sample(8, 16, "cpu", _gen(3))
    if op == "flip":  # a flip draw may leave an image as is; force the flip
        draw.params["flip"] = torch.ones_like(draw.params["flip"])
    if op == "crop":  # a zero translation is a valid draw; force a shift
        draw.params["crop"] = torch.full_like(draw.params["crop"], 2)
    y = dsa.apply(x, draw)
    assert draw.ops == [op]
    assert not torch.allclose(y, x, atol=1e-4)


def test_shared_draw_applies_identical_parameters_to_real_and_synthetic_batches():
    dsa = DSA(DSAConfig(mode="all"))
    real, synthetic = _images(7, 16, seed=1), _images(3, 16, seed=2)
    draw = dsa.sample(7, 16, "cpu", _gen(5), shared=True)
    assert all(v.shape[0] == 1 for v in draw.params.values())
    out_real, out_syn = dsa.apply(real, draw), dsa.apply(synthetic, draw)
    assert out_real.shape == real.shape and out_syn.shape == synthetic.shape
    # The same image in both batches is transformed identically ...
    twin = torch.cat([real[:1], synthetic[1:]])
    assert torch.allclose(dsa.apply(twin, draw)[0], out_real[0], atol=1e-6)
    # ... and with a shared draw, so are two copies of one image inside a batch.
    pair = torch.cat([real[:1], real[:1]])
    out = dsa.apply(pair, draw)
    assert torch.allclose(out[0], out[1], atol=1e-6)


def test_unshared_draw_has_per_image_parameters():
    dsa = DSA(DSAConfig(mode="all"))
    draw = dsa.sample(16, 16, "cpu", _gen(7), shared=False)
    assert all(v.shape[0] == 16 for v in draw.params.values())
    assert len(set(draw.params["rotate"].tolist())) == 16
    x = _images(1, 16).expand(16, -1, -1, -1).contiguous()  # 16 copies of one image
    y = dsa.apply(x, draw)
    assert not torch.allclose(y[0], y[1], atol=1e-4)


def test_draws_are_reproducible_from_a_generator():
    dsa = DSA(DSAConfig(mode="all"))
    x = _images(4, 16)
    assert torch.equal(dsa(x, generator=_gen(11)), dsa(x, generator=_gen(11)))
    assert not torch.equal(dsa(x, generator=_gen(11)), dsa(x, generator=_gen(12)))


@pytest.mark.parametrize("op", OPS)
def test_gradients_flow_to_the_input(op):
    x = _images(4, 16).requires_grad_(True)
    y = DSA(DSAConfig(strategy=op))(x, generator=_gen(1))
    (y * torch.linspace(0, 1, y.numel()).view_as(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_empty_or_none_strategy_is_the_identity():
    x = _images(3, 16)
    for strategy in ("", "none"):
        assert torch.equal(DSA(DSAConfig(strategy=strategy))(x, generator=_gen()), x)


def test_unknown_op_and_mode_are_value_errors():
    with pytest.raises(ValueError, match="unknown DSA op"):
        DSA(DSAConfig(strategy="color_blur"))
    with pytest.raises(ValueError, match="mode"):
        DSA(DSAConfig(mode="M"))


def test_parameters_follow_the_reference_ranges():
    cfg = DSAConfig()
    draw = DSA(DSAConfig(mode="all")).sample(4000, 32, "cpu", _gen(0))
    p = draw.params
    assert p["brightness"].min() >= -0.5 and p["brightness"].max() <= 0.5
    assert p["saturation"].min() >= 0 and p["saturation"].max() <= cfg.saturation
    assert p["contrast"].min() >= cfg.contrast and p["contrast"].max() <= cfg.contrast + 1
    assert p["crop"].abs().max() == 4  # 32 * 0.125 pixels
    assert p["scale"].min() >= 1 / 1.2 and p["scale"].max() <= 1.2
    assert p["rotate"].abs().max() <= 15 / 180 * torch.pi
    assert 0.45 < p["flip"].float().mean() < 0.55
    assert p["cutout"].min() >= 0 and p["cutout"].max() <= 32
