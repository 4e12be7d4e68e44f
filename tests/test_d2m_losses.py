"""D2M's matching losses and trainers: zero exactly when matched, gradients to the right place."""

from __future__ import annotations

import copy
from dataclasses import replace
import itertools
import math

import pytest
import torch

from distill.d2m import ClassMatcher, D2MConfig, D2MTrainer, pool_seed
from distill.dm import DMConfig, DMTrainer
from distill.generator import Generator, tiny_generator_config, with_latent_pool
from distill.inversion import invert, reconstruction_psnr, tune
from distill.losses import (MatchingConfig, attention_loss, attention_map, embedding_loss, matching_losses,
                            prediction_loss, random_frozen_convnet)
from distill.net_queue import NetQueue
from search_spaces.convnet import ConvNetSpec

SMALL_NET = "convnet-d2-w8-relu-instancenorm-avgpool"


def _fake_data(per_class: int = 6, num_classes: int = 10):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.randint(0, 256, (len(labels), 3, 32, 32), generator=g, dtype=torch.uint8)
    return images, labels


def _pretrained_like_generator() -> Generator:
    """A fresh generator whose BatchNorm running statistics have seen batches, as after
    pre-training (fresh statistics saturate tanh in eval mode, where D2M runs it)."""
    g = Generator(tiny_generator_config())
    with torch.no_grad():
        for _ in range(10):
            g(torch.randn(20, g.config.z_dim), torch.arange(20) % 10)
    return g.eval()


def test_attention_map_is_unit_norm_per_image():
    h = torch.randn(5, 8, 4, 4)
    a = attention_map(h, power=4)
    assert a.shape == (5, 16)
    assert torch.allclose(a.norm(dim=1), torch.ones(5))


def test_each_term_is_zero_for_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    blocks = [torch.randn(6, 8, 8, 8), torch.randn(6, 8, 4, 4)]
    other = [b + torch.randn_like(b) for b in blocks]
    assert attention_loss(blocks, [b.clone() for b in blocks], 4.0) == 0
    assert attention_loss(blocks, other, 4.0) > 0
    emb = torch.randn(6, 32)
    assert embedding_loss(emb, emb.clone()) == 0
    assert embedding_loss(emb, emb + 0.1) > 0
    logits = torch.randn(6, 10)
    assert prediction_loss(logits, logits.clone(), tau=4.0).abs() < 1e-6
    assert prediction_loss(logits, torch.randn(6, 10) * 3, tau=4.0) > 0


def test_matching_losses_through_a_network():
    net = random_frozen_convnet(None, 3, 10, 32, seed=0, device="cpu")
    x = torch.randn(4, 3, 32, 32)
    same = matching_losses(net, x, x.clone(), MatchingConfig())
    assert all(abs(float(v)) < 1e-5 for v in same.values())
    diff = matching_losses(net, x, torch.randn(4, 3, 32, 32), MatchingConfig(attention_weight=2, lambda_pred=3))
    assert all(float(diff[k]) > 0 for k in ("attention", "embedding", "prediction"))
    expected = 2 * diff["attention"] + diff["embedding"] + 3 * diff["prediction"]
    assert torch.allclose(diff["total"], expected)
    off = matching_losses(net, x, torch.randn(4, 3, 32, 32), MatchingConfig(attention_weight=0, lambda_pred=0))
    assert float(off["attention"]) == 0 and float(off["prediction"]) == 0


def test_random_frozen_convnet_is_seeded_frozen_and_depth_follows_resolution():
    a = random_frozen_convnet(None, 3, 10, 32, seed=5, device="cpu")
    b = random_frozen_convnet(None, 3, 10, 32, seed=5, device="cpu")
    c = random_frozen_convnet(None, 3, 10, 64, seed=5, device="cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not any(p.requires_grad for p in a.parameters())
    assert a.spec.depth == 3 and c.spec.depth == 4 and a.spec.width == 128


def test_bad_matching_settings_are_value_errors():
    with pytest.raises(ValueError, match="tau"):
        MatchingConfig(tau=0)
    with pytest.raises(ValueError, match="learn"):
        D2MConfig(learn="everything")


def test_gradients_reach_the_generator_and_not_the_frozen_convnet(monkeypatch):
    import distill.d2m as d2m_module

    nets = []
    original = d2m_module.random_frozen_convnet

    def keep(*args, **kwargs):
        nets.append(original(*args, **kwargs))
        return nets[-1]

    monkeypatch.setattr(d2m_module, "random_frozen_convnet", keep)
    torch.manual_seed(0)
    images, labels = _fake_data()
    g = _pretrained_like_generator()
    before = [p.detach().clone() for p in g.parameters()]
    trainer = D2MTrainer(g, D2MConfig(iterations=1, real_per_class=4, syn_per_class=3, lr=1e-2, convnet=SMALL_NET),
                         images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    trainer.step()
    grads = [p.grad for p in g.parameters()]
    assert all(gr is not None for gr in grads) and sum(float(gr.abs().sum()) for gr in grads) > 0
    assert sum(not torch.equal(b, p) for b, p in zip(before, g.parameters())) > 0
    assert len(nets) == 1 and all(p.grad is None and not p.requires_grad for p in nets[0].parameters())


def test_learning_a_subset_leaves_the_rest_unchanged():
    torch.manual_seed(0)
    images, labels = _fake_data()
    g = _pretrained_like_generator()
    before = {n: p.detach().clone() for n, p in g.named_parameters()}
    conditional = {id(p) for p in g.parameter_groups()["conditional"]}
    trainer = D2MTrainer(g, D2MConfig(iterations=1, real_per_class=4, syn_per_class=3, lr=1e-2, learn="conditional",
                                      convnet=SMALL_NET), images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    trainer.step()
    for name, p in g.named_parameters():
        changed = not torch.equal(before[name], p)
        if id(p) not in conditional:
            assert not changed and p.grad is None, name
    assert any(not torch.equal(before[n], p) for n, p in g.named_parameters() if id(p) in conditional)


def test_dm_learns_pixels_initialised_from_real_images():
    images, labels = _fake_data()
    trainer = DMTrainer(DMConfig(ipc=2, iterations=1, real_per_class=4, convnet=SMALL_NET), images, labels,
                        (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    start = trainer.images.detach().clone()
    real = (images.float() / 255 - 0.5) / 0.25
    assert all(any(torch.allclose(s, r) for r in real[labels == c]) for s, c in zip(start, trainer.labels))
    losses = trainer.step()
    assert losses["embedding"] > 0 and losses["attention"] == 0 and losses["prediction"] == 0
    assert not torch.equal(start, trainer.images)
    assert trainer.labels.tolist() == [c for c in range(10) for _ in range(2)]


@pytest.mark.parametrize("convnet", [SMALL_NET, "convnet-d2-w8-relu-batchnorm-avgpool"])
def test_d2m_with_all_classes_in_one_pass_takes_the_same_step(convnet):
    """Same draws, same loss, same gradient, whether classes pass one by one or all at once (the
    frozen ConvNet and the generator run in eval mode, so even BatchNorm is per image)."""
    images, labels = _fake_data()
    generator = _pretrained_like_generator()
    trainers = []
    for batch_classes in (False, True):
        g = Generator(generator.config)
        g.load_state_dict(generator.state_dict())
        config = D2MConfig(iterations=2, real_per_class=4, syn_per_class=3, lr=1e-2, convnet=convnet,
                           matching=MatchingConfig(attention_weight=100.0, lambda_pred=1000.0),
                           batch_classes=batch_classes)
        trainers.append(D2MTrainer(g, config, images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu")))
    one_by_one, all_at_once = trainers
    for _ in range(2):
        a, b = one_by_one.step(), all_at_once.step()
        # the prediction term is a small KL (~1e-3 here) made by cancellation: float rounding of the
        # larger batches' kernels moves it by ~1e-4 relative on some CPUs, hence the absolute floor
        assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-5) for k in a)
        assert a["attention"] > 0 and a["prediction"] > 0
    for p, q in zip(one_by_one.generator.parameters(), all_at_once.generator.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)
    assert torch.equal(one_by_one.rng.get_state(), all_at_once.rng.get_state())  # the same draws were made


def test_matching_the_pools_first_k_adds_their_loss_as_a_set_of_their_own():
    """match_first K: each class's loss is that of its whole synthetic batch plus that of its first K
    images against the same real batch; the draws are those of a run without it (the whole pool, in
    pool order), and all classes at once take the same step as one by one."""
    net = random_frozen_convnet(ConvNetSpec.parse(SMALL_NET), 3, 10, 32, 0, torch.device("cpu"))
    real, syn = torch.randn(6, 3, 32, 32), torch.randn(4, 3, 32, 32)
    matcher = ClassMatcher(MatchingConfig(attention_weight=100.0, lambda_pred=1000.0), SMALL_NET, "", 3, 10, 32,
                           torch.device("cpu"), match_first=(2,))
    got = matcher._terms(net, net.block_outputs(real), net.block_outputs(syn))
    whole = matching_losses(net, real, syn, matcher.matching)
    first = matching_losses(net, real, syn[:2], matcher.matching)
    assert all(got[k].item() == pytest.approx((whole[k] + first[k]).item(), rel=1e-5) for k in got)
    matcher.match_first = (1, 2)  # several prefixes: one more set each
    got = matcher._terms(net, net.block_outputs(real), net.block_outputs(syn))
    one = matching_losses(net, real, syn[:1], matcher.matching)
    assert all(got[k].item() == pytest.approx((whole[k] + first[k] + one[k]).item(), rel=1e-5) for k in got)

    images, labels = _fake_data()
    generator = _pretrained_like_generator()
    trainers = {}
    for name, match_first, batch_classes in (("plain", 0, False), ("first", 1, False), ("first-batched", 1, True)):
        g = Generator(generator.config)
        g.load_state_dict(generator.state_dict())
        config = D2MConfig(iterations=2, real_per_class=4, syn_per_class=3, latent_pool=3, lr=1e-2, convnet=SMALL_NET,
                           matching=MatchingConfig(attention_weight=100.0, lambda_pred=1000.0),
                           match_first=match_first, batch_classes=batch_classes)
        trainers[name] = D2MTrainer(g, config, images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    losses = {name: t.step() for name, t in trainers.items()}
    assert losses["first"]["total"] > losses["plain"]["total"]  # the same start and draws, one more term
    assert all(losses["first"][k] == pytest.approx(losses["first-batched"][k], rel=1e-4) for k in losses["first"])
    assert torch.equal(trainers["plain"].rng.get_state(), trainers["first"].rng.get_state())
    assert not torch.allclose(trainers["plain"].generator.learned_z, trainers["first"].generator.learned_z)
    for p, q in zip(trainers["first"].generator.parameters(), trainers["first-batched"].generator.parameters()):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-6)
    assert trainers["first"]._latents(0).tolist() == [0, 1, 2]  # the pool in order: its first K are IPC K's
    for given, kept, written in ((0, (), 0), ((), (), 0), (2, (2,), 2), ((2, 1, 2), (1, 2), [1, 2]), ([0, 1], (1,), 1)):
        config = D2MConfig(latent_pool=3, syn_per_class=3, match_first=given)
        assert config.match_first == kept and config.to_dict()["match_first"] == written  # one K as before: resumable
    for bad in (dict(match_first=3), dict(match_first=(1, 3)), dict(match_first=(-1, 1)),
                dict(match_first=1, syn_per_class=2), dict(match_first=1, latent_pool=0)):
        with pytest.raises(ValueError, match="needs 0 < K < latent_pool and syn_per_class == latent_pool"):
            D2MConfig(**{"latent_pool": 3, "syn_per_class": 3} | bad)


def test_dm_with_all_classes_in_one_pass_takes_the_same_step():
    images, labels = _fake_data()
    trainers = [DMTrainer(DMConfig(ipc=2, iterations=1, real_per_class=4, convnet=SMALL_NET, batch_classes=b),
                          images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu")) for b in (False, True)]
    a, b = (t.step() for t in trainers)
    assert a["embedding"] == pytest.approx(b["embedding"], rel=1e-5) and a["embedding"] > 0
    assert torch.allclose(trainers[0].images, trainers[1].images, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device, asked, batched", [("cpu", None, False), ("cuda", None, True),
                                                    ("cuda", False, False), ("cpu", True, True)])
def test_classes_are_batched_by_default_on_a_gpu_only(device, asked, batched):
    """Measured (benchmarks/class_batching.py): faster on an H200, slower on a small CPU."""
    matcher = ClassMatcher(MatchingConfig(), SMALL_NET, "color", 3, 10, 32, torch.device(device), asked)
    assert matcher.batch_classes is batched


@pytest.mark.parametrize("learn", ["latents", "all"])
def test_d2m_learns_its_latent_pool_alone_or_with_the_weights(learn):
    images, labels = _fake_data()
    generator = _pretrained_like_generator()
    config = D2MConfig(iterations=1, real_per_class=4, syn_per_class=2, lr=1e-2, convnet=SMALL_NET, learn=learn,
                       latent_pool=3)
    trainer = D2MTrainer(generator, config, images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    assert trainer.generator.learned_z.shape == (10, 3, generator.config.z_dim)
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    losses = trainer.step()
    assert all(math.isfinite(v) for v in losses.values())
    changed = {k for k, v in trainer.generator.state_dict().items() if not torch.equal(before[k], v)}
    assert "learned_z" in changed and (changed == {"learned_z"}) == (learn == "latents")


@pytest.mark.parametrize("latent_lr", [None, 0.05])
def test_the_latent_pool_steps_at_its_own_learning_rate(latent_lr):
    """Adam with beta1 = 0 moves every coordinate by about its group's lr on the first step."""
    images, labels = _fake_data()
    config = D2MConfig(iterations=1, real_per_class=4, syn_per_class=2, lr=1e-3, convnet=SMALL_NET, latent_pool=3,
                       latent_lr=latent_lr)
    trainer = D2MTrainer(_pretrained_like_generator(), config, images, labels, (0.5,) * 3, (0.25,) * 3,
                         torch.device("cpu"))
    before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    trainer.step()
    moved = {k: float((v - before[k]).abs().max()) for k, v in trainer.generator.state_dict().items()
             if v.is_floating_point() and "running" not in k}
    pool_lr = 1e-3 if latent_lr is None else latent_lr
    assert 0.5 * pool_lr < moved.pop("learned_z") <= pool_lr * 1.001
    assert 0 < max(moved.values()) <= 1e-3 * 1.001  # the weights at lr


def test_inversion_finds_latents_whose_images_approach_the_targets_and_leaves_the_weights_alone():
    g = _pretrained_like_generator()
    labels = torch.arange(10)
    with torch.no_grad():
        targets = g(torch.randn(10, g.config.z_dim, generator=torch.Generator().manual_seed(1)), labels)
    start = torch.randn(10, g.config.z_dim, generator=torch.Generator().manual_seed(2))
    weights = {k: v.clone() for k, v in g.state_dict().items()}
    z = invert(g, targets, labels, start, steps=60)
    assert reconstruction_psnr(g, targets, labels, z) > reconstruction_psnr(g, targets, labels, start) + 3
    assert torch.equal(invert(g, targets, labels, start, steps=0), start)
    assert all(torch.equal(weights[k], v) for k, v in g.state_dict().items())
    assert all(p.grad is None for p in g.parameters()) and not g.training
    with pytest.raises(ValueError, match="one latent and label per target"):
        invert(g, targets[:3], labels, start, steps=1)


def test_tuning_fits_the_weights_to_the_targets_from_fixed_latents_and_leaves_no_trace():
    g = with_latent_pool(_pretrained_like_generator(), 1, 0)
    labels = torch.arange(10)
    targets = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1  # outside G's range
    z = torch.randn(10, g.config.z_dim, generator=torch.Generator().manual_seed(2))
    pool = g.learned_z.detach().clone()
    g.learned_z.requires_grad_(False)
    frozen = next(g.parameters())
    frozen.requires_grad_(False)  # as D2M leaves the weights it does not learn
    before = reconstruction_psnr(g, targets, labels, z)
    z_before = z.clone()
    tune(g, targets, labels, z, steps=30, lr=1e-3)
    assert reconstruction_psnr(g, targets, labels, z) > before + 1
    assert torch.equal(z, z_before) and torch.equal(g.learned_z, pool)  # latents and pool untouched
    assert not frozen.requires_grad and not g.learned_z.requires_grad
    assert all(p.requires_grad for p in g.parameters() if p is not frozen and p is not g.learned_z)
    assert all(p.grad is None for p in g.parameters()) and not g.training
    with pytest.raises(ValueError, match="one latent and label per target"):
        tune(g, targets[:3], labels, z, steps=1)
    with pytest.raises(ValueError, match="tuning_steps .* need latent_init='real'"):
        D2MConfig(latent_pool=2, tuning_steps=3)
    with pytest.raises(ValueError, match="inversion_steps and tuning_steps must be >= 0"):
        D2MConfig(latent_pool=2, latent_init="real", tuning_steps=-1)


def test_tuning_in_batches_visits_every_image_once_a_pass_and_a_cosine_rate_ends_at_zero(monkeypatch):
    import distill.inversion as inversion

    assert [b.tolist() for b in itertools.islice(inversion._batches(3, 3, 0, torch.device("cpu")), 2)] \
        == [[0, 1, 2], [0, 1, 2]]
    passes = list(itertools.islice(inversion._batches(10, 3, 5, torch.device("cpu")), 6))
    assert all(len(b) == 3 for b in passes)  # the remainder of a pass (1 image) is dropped
    assert len(set(torch.cat(passes[:3]).tolist())) == 9 and len(set(torch.cat(passes[3:]).tolist())) == 9
    again = list(itertools.islice(inversion._batches(10, 3, 5, torch.device("cpu")), 6))
    assert all(torch.equal(a, b) for a, b in zip(passes, again))  # the order is the seed's

    g = with_latent_pool(_pretrained_like_generator(), 1, 0)
    labels = torch.arange(10)
    targets = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    z = torch.randn(10, g.config.z_dim, generator=torch.Generator().manual_seed(2))
    seen, rates, forward = [], [], g.forward

    def recording_forward(zb, yb):
        seen.append(len(zb))
        return forward(zb, yb)

    step = torch.optim.Adam.step

    def recording_step(self, *a, **k):
        rates.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    before = reconstruction_psnr(g, targets, labels, z)
    monkeypatch.setattr(g, "forward", recording_forward)
    monkeypatch.setattr(torch.optim.Adam, "step", recording_step)
    tune(g, targets, labels, z, steps=40, lr=1e-3, batch_size=4, cosine=True, seed=3)
    assert seen == [4] * 40 and reconstruction_psnr(g, targets, labels, z) > before + 1
    assert rates[0] == pytest.approx(1e-3) and rates[20] == pytest.approx(5e-4) and rates[-1] < 2e-6
    with pytest.raises(ValueError, match="batch_size must be >= 0"):
        tune(g, targets, labels, z, steps=1, batch_size=-1)


def test_a_pool_started_from_real_images_is_their_inversion_made_once_before_the_first_step():
    images, labels = _fake_data()
    config = D2MConfig(iterations=1, real_per_class=4, syn_per_class=2, lr=1e-3, convnet=SMALL_NET, latent_pool=3,
                       latent_init="real", inversion_steps=40)
    normal = D2MTrainer(_pretrained_like_generator(), replace(config, latent_init="normal"), images, labels,
                        (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    trainer = D2MTrainer(_pretrained_like_generator(), config, images, labels, (0.5,) * 3, (0.25,) * 3,
                         torch.device("cpu"))
    g = trainer.generator
    assert torch.equal(g.learned_z, normal.generator.learned_z)  # nothing inverted before it is needed
    # the documented targets: latent_pool images of every class in turn, drawn by the pool's seed
    rng = torch.Generator().manual_seed(pool_seed(config))
    targets = torch.cat([trainer.real.unnormalized(c, 3, rng) * 2 - 1 for c in range(10)])
    pool_labels = torch.arange(10).repeat_interleave(3)
    start = g.learned_z.detach().flatten(0, 1).clone()
    rng_before = trainer.rng.get_state()
    state = trainer.state_dict()  # a run of 0 iterations saves the inverted start
    assert torch.equal(trainer.rng.get_state(), rng_before)  # the iterations' draws are not shifted
    inverted = state["generator"]["learned_z"].flatten(0, 1)
    assert torch.equal(inverted, invert(g, targets, pool_labels, start, 40))
    assert reconstruction_psnr(g, targets, pool_labels, inverted) > reconstruction_psnr(g, targets, pool_labels, start)
    trainer.step()  # not inverted again
    assert float((g.learned_z.detach().flatten(0, 1) - inverted).abs().max()) <= 1e-3 * 1.001
    resumed = D2MTrainer(_pretrained_like_generator(), config, images, labels, (0.5,) * 3, (0.25,) * 3,
                         torch.device("cpu"))
    resumed.load_state_dict(trainer.state_dict())
    assert not resumed.pool_pending


def test_a_real_start_needs_a_pool_and_enough_images():
    with pytest.raises(ValueError, match="needs a latent pool"):
        D2MConfig(latent_init="real")
    with pytest.raises(ValueError, match="latent_init must be one of normal, real"):
        D2MConfig(latent_pool=2, latent_init="zeros")
    with pytest.raises(ValueError, match="inversion_steps and tuning_steps must be >= 0"):
        D2MConfig(latent_pool=2, latent_init="real", inversion_steps=-1)
    images, labels = _fake_data(per_class=2)
    with pytest.raises(ValueError, match="a latent pool of 3 starts from as many real images.*only 2"):
        D2MTrainer(_pretrained_like_generator(), D2MConfig(latent_pool=3, latent_init="real", convnet=SMALL_NET),
                   images, labels, (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))


def test_learning_the_latents_alone_needs_a_pool():
    with pytest.raises(ValueError, match="needs a latent pool"):
        D2MConfig(learn="latents")
    with pytest.raises(ValueError, match="latent_pool must be >= 0"):
        D2MConfig(latent_pool=-1)
    with pytest.raises(ValueError, match="latent_lr needs a latent pool"):
        D2MConfig(latent_lr=0.01)
    with pytest.raises(ValueError, match="latent_lr needs a latent pool"):
        D2MConfig(latent_pool=2, latent_lr=0.0)


def _queue(size: int = 2, max_steps: int = 0, seed: int = 0) -> NetQueue:
    return NetQueue(size, 0.05, max_steps, ConvNetSpec.parse(SMALL_NET), 3, 10, 32, torch.device("cpu"),
                    torch.Generator().manual_seed(seed))


def test_a_net_queue_takes_its_nets_in_turn_and_trains_each_on_real_images():
    images, labels = _fake_data()
    x = (images.float() / 255 - 0.5) / 0.25
    queue = _queue(size=2)
    first = [p.clone() for p in queue.nets[0].parameters()]
    losses = []
    for i in range(6):
        net, loss = queue.next(x, labels)
        assert net is queue.nets[i % 2] and not any(p.requires_grad for p in net.parameters())  # handed over frozen
        losses.append(float(loss))
    assert queue.steps == [3, 3] and queue.turn == 6
    assert not all(torch.equal(a, b) for a, b in zip(first, queue.nets[0].parameters()))
    assert losses[4] < losses[0] and losses[5] < losses[1]  # each net fits the batch it keeps seeing


def test_a_net_queue_reinitialises_a_net_after_its_steps_and_resumes_exactly():
    images, labels = _fake_data()
    x = (images.float() / 255 - 0.5) / 0.25
    queue = _queue(size=1, max_steps=2)
    queue.next(x, labels)
    net, _ = queue.next(x, labels)
    trained = [p.clone() for p in net.parameters()]
    fresh, loss = queue.next(x, labels)  # the third use: re-initialised, then trained a step
    assert queue.steps == [1] and fresh is not net
    assert loss > 2.0  # a fresh net's cross-entropy (ln 10 = 2.30), not the trained one's
    saved, rng_state = copy.deepcopy(queue.state_dict()), queue.rng.get_state()  # as a checkpoint file holds it
    expected = [float(queue.next(x, labels)[1]) for _ in range(3)]
    resumed = _queue(size=1, max_steps=2, seed=99)
    resumed.load_state_dict(saved)
    resumed.rng.set_state(rng_state)  # the trainer restores its generator the same way
    assert [float(resumed.next(x, labels)[1]) for _ in range(3)] == expected
    assert not all(torch.equal(a, b) for a, b in zip(trained, resumed.nets[0].parameters()))
    with pytest.raises(ValueError, match="holds 1 matching nets, this run 2"):
        _queue(size=2).load_state_dict(saved)


def test_d2m_with_a_net_queue_matches_through_trained_nets_and_records_their_loss():
    images, labels = _fake_data()
    config = D2MConfig(iterations=2, real_per_class=4, syn_per_class=2, lr=1e-3, convnet=SMALL_NET, trained_nets=1)
    trainer = D2MTrainer(_pretrained_like_generator(), config, images, labels, (0.5,) * 3, (0.25,) * 3,
                         torch.device("cpu"))
    losses = [trainer.step(), trainer.step()]
    assert all(math.isfinite(v) for row in losses for v in row.values()) and "net_loss" in losses[0]
    assert trainer.nets.steps == [2] and trainer.state_dict()["nets"]["steps"] == [2]
    plain = D2MTrainer(_pretrained_like_generator(), D2MConfig(iterations=1, real_per_class=4, syn_per_class=2,
                                                                convnet=SMALL_NET), images, labels,
                       (0.5,) * 3, (0.25,) * 3, torch.device("cpu"))
    assert plain.nets is None and "net_loss" not in plain.step() and "nets" not in plain.state_dict()
    for bad in ({"trained_nets": -1}, {"net_lr": 0.0}, {"net_max_steps": -2}):
        with pytest.raises(ValueError, match="trained_nets and net_max_steps must be >= 0 and net_lr > 0"):
            D2MConfig(**bad)
