"""Generator, discriminator and DiffAugment: shapes, ranges, determinism, parameter groups."""

from __future__ import annotations

import pytest
import torch

from distill.diffaugment import diff_augment
from distill.discriminator import Discriminator, DiscriminatorConfig
from distill.generator import (Generator, GeneratorConfig, generate_per_class, tiny_generator_config, to_normalized,
                              with_latent_pool)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_generator_and_discriminator_shapes_at_every_resolution(size):
    torch.manual_seed(0)
    g = Generator(tiny_generator_config(image_size=size, num_classes=5))
    z, y = torch.randn(3, g.config.z_dim), torch.tensor([0, 2, 4])
    x = g(z, y)
    assert x.shape == (3, 3, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    d = Discriminator(DiscriminatorConfig(image_size=size, num_classes=5, width=4))
    assert d(x, y).shape == (3,)


def test_unsupported_resolution_is_a_value_error():
    with pytest.raises(ValueError, match="image size"):
        GeneratorConfig(image_size=48)


def test_generation_is_deterministic_for_a_seed_and_ordered_by_class():
    torch.manual_seed(0)
    g = Generator(tiny_generator_config())
    a, labels = generate_per_class(g, ipc=3, seed=7, device="cpu")
    b, _ = generate_per_class(g, ipc=3, seed=7, device="cpu", batch_size=4)  # batching must not matter
    c, _ = generate_per_class(g, ipc=3, seed=8, device="cpu")
    assert a.shape == (30, 3, 32, 32)
    assert torch.equal(labels, torch.arange(10).repeat_interleave(3))
    assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, c)
    assert g.training  # generation restores the mode it found


def test_the_class_changes_the_image():
    torch.manual_seed(0)
    g = Generator(tiny_generator_config()).eval()
    z = torch.randn(1, g.config.z_dim).repeat(2, 1)
    x = g(z, torch.tensor([0, 1]))
    assert not torch.allclose(x[0], x[1])


def test_parameter_groups_are_nested_subsets():
    g = Generator(tiny_generator_config())
    groups = {k: {id(p) for p in v} for k, v in g.parameter_groups().items()}
    assert groups["embedding"] < groups["conditional"] < groups["all"]
    assert groups["all"] == {id(p) for p in g.parameters()}


def test_to_normalized_maps_generator_range_to_dataset_statistics():
    x = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2).repeat(1, 3, 1, 1)
    out = to_normalized(x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), -2.0))
    assert torch.allclose(out[0, :, 0, 1], torch.full((3,), 2.0))


def test_diffaugment_keeps_shape_is_seeded_and_differentiable():
    x = torch.rand(4, 3, 16, 16, requires_grad=True)
    a = diff_augment(x, generator=torch.Generator().manual_seed(1))
    b = diff_augment(x, generator=torch.Generator().manual_seed(1))
    c = diff_augment(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown DiffAugment"):
        diff_augment(x, "color,blur")


def test_a_latent_pool_comes_first_in_each_class_and_fresh_draws_after_it():
    torch.manual_seed(0)
    plain = Generator(tiny_generator_config(num_classes=3))
    pooled = with_latent_pool(plain, 2, seed=7)
    assert with_latent_pool(pooled, 2, seed=99) is pooled  # already that pool: kept, not redrawn
    assert torch.equal(pooled.learned_z, with_latent_pool(plain, 2, seed=7).learned_z)  # drawn by its seed
    weights = {k: v for k, v in pooled.state_dict().items() if k != "learned_z"}
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in weights.items()) and weights.keys() == plain.state_dict().keys()
    assert pooled.parameter_groups()["latents"] == [pooled.learned_z] and plain.parameter_groups()["latents"] == []
    images, labels = generate_per_class(pooled, 4, seed=1, device="cpu")
    fresh, _ = generate_per_class(plain, 4, seed=1, device="cpu")
    with torch.no_grad():
        for c in range(3):
            learned = pooled.eval()(pooled.learned_z[c], torch.full((2,), c))
            assert torch.allclose(images[4 * c:4 * c + 2], learned, atol=1e-6)  # the pool first ...
            assert torch.equal(images[4 * c + 2:4 * c + 4], fresh[4 * c + 2:4 * c + 4])  # ... then the seed's draws
    one, _ = generate_per_class(pooled, 1, seed=5, device="cpu")  # IPC under the pool: learned images only
    assert torch.allclose(one, images[::4], atol=1e-6)
    assert with_latent_pool(pooled, 0, seed=0).learned_z is None
    with pytest.raises(ValueError, match="latent_pool"):
        GeneratorConfig(latent_pool=-1)
