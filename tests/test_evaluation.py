import dataclasses

import pytest
import torch

from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.errors import UserError
from d2m_nas.evaluation import (EvalConfig, evaluate_synthetic, field_protocol, protocol_differences,
                                accuracy_on_test_split, train_on_images)
from d2m_nas.random_subset import random_real_subset

TINY = EvalConfig(model="convnet-d1-w8-relu-instancenorm-avgpool", epochs=10, lr=0.01, batch_size=32)


@pytest.fixture(scope="module")
def fake():
    return make_fake_dataset(train_per_class=20, test_per_class=10)


@pytest.fixture(scope="module")
def subset(fake):
    return random_real_subset(fake, ipc=5, seed=0, val_per_class=5)


def test_default_config_is_the_fields_protocol():
    cfg = EvalConfig()
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.batch_size, cfg.dsa) == \
           ("convnet-d3-w128-relu-instancenorm-avgpool", 1000, 0.01, 0.9, 5e-4, 256, True)
    assert cfg.dsa_strategy == "color_crop_cutout_flip_scale_rotate" and cfg.lr_decay_epoch == 500
    assert field_protocol(32) == cfg and protocol_differences(cfg) == {}
    assert field_protocol(64).model.startswith("convnet-d4-") and field_protocol(128).model.startswith("convnet-d5-")


def test_protocol_differences_name_what_was_reduced():
    cfg = dataclasses.replace(EvalConfig(), epochs=300, dsa=False, test_batch_size=17)
    assert protocol_differences(cfg) == {"epochs": {"used": 300, "protocol": 1000},
                                         "dsa": {"used": False, "protocol": True}}
    # ConvNet-3 on 64x64 images is not the protocol there (ConvNet-4 is)
    assert protocol_differences(EvalConfig(), image_size=64)["model"]["protocol"].startswith("convnet-d4")


def test_training_on_the_fake_set_beats_chance_clearly(fake, subset):
    report = evaluate_synthetic(subset, fake, TINY, runs=2, device="cpu", seed=0, progress=False)
    assert len(report.accuracies) == 2 and report.seeds == [0, 1]
    assert report.mean > 50.0, report.accuracies  # chance is 10 %
    assert report.mean == pytest.approx(sum(report.accuracies) / 2)
    assert report.std == pytest.approx(abs(report.accuracies[0] - report.accuracies[1]) / 2)
    assert report.protocol == "reduced" and set(report.differences) == {"model", "epochs", "batch_size"}
    assert report.num_images == 50 and report.ipc == 5 and report.method == "random"
    assert report.config["epochs"] == 10 and report.config["lr_decay_epoch"] == 5
    assert report.dataset == "fake" and report.split == "test" and report.seconds > 0
    line = report.summary()
    assert line.startswith(f"test accuracy {report.mean:.1f} ± {report.std:.1f} % over 2 runs (")
    assert "10 epochs [reduced from 1000]" in line and "DSA" in line and line.endswith("on fake test")
    assert "batch size 32 [protocol 256]" in line


def test_untrained_network_is_near_chance_so_the_check_above_can_fail(fake, subset):
    cfg = dataclasses.replace(TINY, epochs=1, lr=1e-9)
    model = train_on_images(subset.images, subset.labels, 10, cfg, "cpu", seed=0)
    assert accuracy_on_test_split(model, fake, "cpu") < 40.0


def test_training_is_reproducible_from_the_seed(subset):
    cfg = dataclasses.replace(TINY, epochs=2)
    a = train_on_images(subset.images, subset.labels, 10, cfg, "cpu", seed=4)
    b = train_on_images(subset.images, subset.labels, 10, cfg, "cpu", seed=4)
    c = train_on_images(subset.images, subset.labels, 10, cfg, "cpu", seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), c.state_dict().values()))
    assert not a.training


def test_lr_drops_tenfold_at_half_the_epochs_with_a_fresh_optimiser(subset, monkeypatch):
    created = []
    real_sgd = torch.optim.SGD

    def recording_sgd(params, lr, **kwargs):
        created.append((lr, kwargs["momentum"], kwargs["weight_decay"]))
        return real_sgd(params, lr=lr, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", recording_sgd)
    train_on_images(subset.images, subset.labels, 10, dataclasses.replace(TINY, epochs=4), "cpu", seed=0)
    assert created == [(0.01, 0.9, 5e-4), (pytest.approx(0.001), 0.9, 5e-4)]


def test_without_dsa_the_summary_says_so(fake, subset):
    cfg = dataclasses.replace(TINY, epochs=1, dsa=False)
    report = evaluate_synthetic(subset, fake, cfg, runs=1, progress=False)
    assert "no DSA [protocol: DSA]" in report.summary() and "over 1 run (" in report.summary()


@pytest.mark.parametrize("key,value", [("dataset", "cifar10"), ("num_classes", 100), ("mean", [0.1, 0.2, 0.3])])
def test_metadata_mismatch_is_a_user_error(fake, subset, key, value):
    changed = dataclasses.replace(subset, metadata=dict(subset.metadata) | {key: value})
    with pytest.raises(UserError, match=f"does not match dataset 'fake'.*{key}"):
        evaluate_synthetic(changed, fake, TINY, runs=1, progress=False)


@pytest.mark.parametrize("key,change", [("image_size", {"image_size": 16}), ("channels", {"channels": 1})])
def test_shape_mismatch_with_the_dataset_is_a_user_error(subset, key, change):
    other = make_fake_dataset(train_per_class=20, test_per_class=10, **change)
    with pytest.raises(UserError, match=f"does not match dataset 'fake'.*{key}"):
        evaluate_synthetic(subset, other, TINY, runs=1, progress=False)


@pytest.mark.parametrize("change,match", [({"epochs": 0}, "--epochs"), ({"model": "lenet"}, "--model"),
                                          ({"dsa_strategy": "blur"}, "--dsa-strategy"), ({"lr": 0.0}, "--lr"),
                                          ({"batch_size": 0}, "--batch-size")])
def test_bad_config_values_are_user_errors(fake, subset, change, match):
    with pytest.raises(UserError, match=match):
        evaluate_synthetic(subset, fake, dataclasses.replace(TINY, **change), runs=1, progress=False)


def test_zero_runs_is_a_user_error(fake, subset):
    with pytest.raises(UserError, match="--runs"):
        evaluate_synthetic(subset, fake, TINY, runs=0, progress=False)


def test_bf16_is_a_protocol_difference_and_channels_last_only_a_layout(fake, subset):
    bf16 = dataclasses.replace(TINY, precision="bf16")
    assert protocol_differences(dataclasses.replace(EvalConfig(), precision="bf16")) == {
        "precision": {"used": "bf16", "protocol": "fp32"}}
    assert protocol_differences(dataclasses.replace(EvalConfig(), memory_format="channels_last")) == {}
    cfg = dataclasses.replace(TINY, epochs=2)
    plain = train_on_images(subset.images, subset.labels, 10, cfg, "cpu", seed=0)
    last = train_on_images(subset.images, subset.labels, 10, dataclasses.replace(cfg, memory_format="channels_last"),
                           "cpu", seed=0)
    assert all(torch.allclose(p, q, rtol=1e-4, atol=1e-5) for p, q in zip(plain.state_dict().values(),
                                                                         last.state_dict().values()))
    report = evaluate_synthetic(subset, fake, bf16, runs=1, device="cpu", seed=0, progress=False)
    assert report.mean > 50.0  # still learns the fake set under bf16 autocast
    with pytest.raises(UserError, match="--precision must be one of fp32, bf16, got 'fp8'"):
        dataclasses.replace(TINY, precision="fp8").validate()
