"""The training-based proxy: sources, the validation split's isolation, determinism, costs, CLI errors."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from d2m_nas.cli import main
from d2m_nas.data import split_train_val
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.distill_runs import preset, run_d2m
from d2m_nas.generator_files import load_generator, save_generator, synthesize_from_generator
from d2m_nas.errors import UserError
from d2m_nas.proxies import ProxyContext, TrainingProxy, TrainingProxyConfig, create_proxy
from d2m_nas.ranking import RESULT_COLUMNS
from d2m_nas.score_cache import config_key, proxy_config
from d2m_nas.synthetic import SyntheticSet
from search_spaces.registry import create_space

CPU = torch.device("cpu")
SPACE = create_space("nasbench201")
ARCHS = SPACE.sample(3, 0)
TINY_MODEL = {"channels": 4, "cells_per_stage": 1}


@pytest.fixture(scope="module")
def fake():
    return make_fake_dataset(train_per_class=20, test_per_class=4)


@pytest.fixture(scope="module")
def split(fake):
    return split_train_val(fake.y_train, 5, seed=0)


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    """A finished tiny D2M run for the `fake` dataset (pre-trained and distilled generators)."""
    out = tmp_path_factory.mktemp("d2m")
    assert run_d2m(make_fake_dataset(train_per_class=12, test_per_class=4), preset("tiny"), out, CPU,
                   progress=False)["finished"]
    return out


def context(fake, split, seed=0):
    train, val = split
    return ProxyContext(space=SPACE, dataset=fake, seed=seed, model_options=TINY_MODEL, train_indices=train,
                        val_indices=val)


def proxy(source, steps=4, **kwargs):
    return TrainingProxy(TrainingProxyConfig(source=source, ipc=kwargs.pop("ipc", 3), steps=steps, batch_size=16,
                                             **kwargs))


def dataset_index(fake, images):
    """Which training images (by dataset index) a batch of normalised images is."""
    reference = fake.normalize(fake.x_train).flatten(1)
    same = (images.flatten(1)[:, None] == reference[None]).all(-1)
    assert (same.sum(1) == 1).all(), "a training image is not exactly one dataset training image"
    return same.float().argmax(1)


@pytest.mark.parametrize("source", ["random-subset", "real-stream"])
def test_real_sources_train_only_on_the_training_part(fake, split, source):
    train, val = split
    ctx = context(fake, split)
    images = proxy(source).image_source(ctx)
    assert set(images.indices.tolist()) <= set(train.tolist())
    seen = torch.cat([dataset_index(fake, x) for x, _ in _take(images, 12, torch.Generator().manual_seed(0))])
    assert set(seen.tolist()) <= set(train.tolist()) and not set(seen.tolist()) & set(val.tolist())
    if source == "random-subset":
        assert set(seen.tolist()) == set(images.indices.tolist())  # an epoch covers the subset, nothing else
        assert torch.bincount(fake.y_train[images.indices]).tolist() == [3] * 10


def _take(images, steps, rng):
    stream = images.stream(16, rng)
    return [next(stream) for _ in range(steps)]


def test_validation_images_come_from_the_training_arrays_never_the_test_split(fake, split):
    _, val = split
    x, y = proxy("random-subset").validation_data(context(fake, split))
    assert torch.equal(x, fake.normalize(fake.x_train[val])) and torch.equal(y, fake.y_train[val])
    test_images = fake.x_test.flatten(1).float()
    assert torch.cdist(fake.x_train[val].flatten(1).float(), test_images).min() > 0


def test_overlapping_split_is_refused(fake, split):
    train, val = split
    ctx = ProxyContext(space=SPACE, dataset=fake, model_options=TINY_MODEL, train_indices=train,
                       val_indices=torch.cat([val, train[:1]]))
    with pytest.raises(ValueError, match="overlap"):
        proxy("real-stream").score(ARCHS[0], ctx)
    with pytest.raises(ValueError, match="val_indices"):
        proxy("real-stream").score(ARCHS[0], ProxyContext(space=SPACE, dataset=fake, train_indices=train))


def test_score_is_deterministic_per_seed_and_reports_its_costs(fake, split):
    first = proxy("random-subset").score(ARCHS[0], context(fake, split, seed=3))
    again = proxy("random-subset").score(ARCHS[0], context(fake, split, seed=3))
    other = proxy("random-subset").score(ARCHS[0], context(fake, split, seed=4))
    assert first.score == again.score and first.extra["val_loss"] == again.extra["val_loss"]
    assert first.extra["final_train_loss"] == again.extra["final_train_loss"]
    assert other.extra["val_loss"] != first.extra["val_loss"]
    assert 0 <= first.score <= 100
    extra = first.extra
    assert extra["steps"] == 4 and extra["train_images"] == 30 and extra["batch_size"] == 16
    assert extra["peak_memory_kind"] in ("run_peak_rss", "process_max_rss") and extra["peak_memory_mb"] > 0
    assert extra["device_seconds"] == pytest.approx(extra["train_seconds"] + extra["eval_seconds"])
    assert 0 < extra["train_seconds"] + extra["eval_seconds"] <= first.seconds
    assert extra["images_per_second"] == pytest.approx(4 * 16 / extra["train_seconds"])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="the per-run CPU peak needs Linux /proc")
def test_the_cpu_peak_memory_is_this_runs_not_the_processs(fake, split):
    def resident_mb(field: str) -> float:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    big = torch.ones(100_000_000)  # 400 MB the process holds before the run, then frees
    big.add_(1)
    before = resident_mb("VmHWM:")  # the process's peak so far, the big tensor included
    del big
    extra = proxy("random-subset").score(ARCHS[0], context(fake, split)).extra
    assert extra["peak_memory_kind"] == "run_peak_rss"
    assert 0 < extra["peak_memory_mb"] < before - 300


def test_fixed_set_is_drawn_once_per_seed_and_reused(fake, split):
    p = proxy("random-subset")
    a = p.image_source(context(fake, split, seed=0))
    assert p.image_source(context(fake, split, seed=0)) is a
    b = p.image_source(context(fake, split, seed=1))
    assert b is not a and not torch.equal(a.indices, b.indices)
    stream = proxy("real-stream")  # a stream does not depend on the seed (it only orders the batches)
    assert stream.image_source(context(fake, split, seed=0)) is stream.image_source(context(fake, split, seed=1))


@pytest.mark.parametrize("augment", ["dsa", "none"])
def test_augmentations_change_training_deterministically(fake, split, augment):
    flip = proxy("random-subset").score(ARCHS[2], context(fake, split))
    first, again = (proxy("random-subset", augment=augment).score(ARCHS[2], context(fake, split)) for _ in range(2))
    assert first.extra["val_loss"] == again.extra["val_loss"] != flip.extra["val_loss"]


def test_generator_sources(fake, split, generator_run, tmp_path):
    ctx = context(fake, split, seed=2)
    d2m, stream, before = (proxy(s, generator=str(generator_run)) for s in ("d2m", "d2m-stream", "pretrained-generator"))
    fixed = d2m.image_source(ctx)
    expected = synthesize_from_generator(generator_run, ipc=3, seed=2, device=CPU)
    assert torch.allclose(fixed.images, expected.images) and torch.equal(fixed.labels, expected.labels)
    assert not torch.allclose(before.image_source(ctx).images, fixed.images)  # D2M changed the generator
    x, y = _take(stream.image_source(ctx), 2, torch.Generator().manual_seed(0))[1]
    assert x.shape == (16, 3, 32, 32) and y.tolist() == [(16 + i) % 10 for i in range(16)]
    scores = {p.name: p.score(ARCHS[1], ctx) for p in (d2m, stream, before)}
    assert scores["d2m"].extra["train_images"] == 30 and scores["d2m-stream"].extra["train_images"] is None
    assert d2m.config()["generator_sha256"] != before.config()["generator_sha256"]
    assert d2m.settings.generator.endswith("generator.pt") and stream.config()["ipc"] is None

    path = expected.save(tmp_path / "set.pt")
    dm = proxy("dm", dm_set=str(path))
    assert torch.equal(dm.image_source(ctx).images, expected.images)
    assert dm.score(ARCHS[1], ctx).extra["train_images"] == 30


def test_cache_key_follows_settings_files_and_split(fake, split, generator_run, tmp_path):
    ctx = context(fake, split)
    base = proxy_config(proxy("random-subset"), ctx)
    assert "val_pool" in base and base["settings"]["source"] == "random-subset"
    assert config_key(base) == config_key(proxy_config(proxy("random-subset"), ctx))
    assert config_key(base) != config_key(proxy_config(proxy("random-subset", steps=5), ctx))
    other_split = context(fake, split_train_val(fake.y_train, 5, seed=1))
    assert config_key(base) != config_key(proxy_config(proxy("random-subset"), other_split))
    # neither the eval batch size (speed only) nor the zero-cost proxies' --batch-size changes the score
    assert config_key(base) == config_key(proxy_config(proxy("random-subset"), replace(ctx, batch_size=7)))
    assert config_key(base) == config_key(proxy_config(proxy("random-subset", eval_batch_size=7), ctx))
    # a re-distilled generator (other file content at the same path) is another configuration
    copy = tmp_path / "g.pt"
    copy.write_bytes((generator_run / "generator.pt").read_bytes())
    key = config_key(proxy_config(proxy("d2m", generator=str(copy)), ctx))
    model, meta = load_generator(generator_run)
    with torch.no_grad():
        model.shared.weight.add_(0.01)
    save_generator(model, copy, meta)
    assert key != config_key(proxy_config(proxy("d2m", generator=str(copy)), ctx))
    # the same file elsewhere (a moved run directory, another machine) is the same configuration
    moved = tmp_path / "moved" / "g.pt"
    moved.parent.mkdir()
    moved.write_bytes(copy.read_bytes())
    assert config_key(proxy_config(proxy("d2m", generator=str(moved)), ctx)) == config_key(
        proxy_config(proxy("d2m", generator=str(copy)), ctx))
    # a new implementation version of a proxy never reads the old one's scores
    bumped = proxy("random-subset")
    bumped.version = 2
    assert config_key(proxy_config(bumped, ctx)) != config_key(base)


def test_create_proxy_checks_the_config():
    with pytest.raises(UserError, match="--steps must be at least 1"):
        create_proxy("real-stream", TrainingProxyConfig(steps=0))
    with pytest.raises(UserError, match="needs --generator"):
        create_proxy("d2m")


def rank_argv(out, table, *extra):
    return ["rank", "--space", "nasbench201", "--sample", "3", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--dataset", "fake", "--val-per-class", "10", "--channels", "4",
            "--cells", "1", "--device", "cpu", "--bootstrap", "20", "--steps", "3", "--ipc", "4",
            "--out", str(out), *extra]


def test_rank_with_training_proxies_end_to_end(tmp_path, table, generator_run, capsys):
    out = tmp_path / "run"
    argv = rank_argv(out, table, "--proxy", "d2m,random-subset,params", "--generator", str(generator_run),
                     "--proxy-seeds", "2")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| d2m@val_acc | 3 |" in printed and "| d2m@tse_e | 3 |" in printed
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == 3 * 3 * 2 and sorted(set(results["seed"])) == [0, 1]
    trained = results[results["proxy"] != "params"]
    assert (trained["steps"] == 3).all() and (trained["train_images"] == 40).all()
    assert (trained["device_seconds"] > 0).all() and (trained["peak_memory_mb"] > 0).all()
    assert results.loc[results["proxy"] == "params", ["steps", "train_images", "device_seconds"]].isna().all().all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["proxy_seeds"] == [0, 1]
    d2m = summary["proxies"]["d2m@val_acc"]
    assert d2m["n_archs"] == 3 and d2m["evaluations"] == 6 and list(d2m["per_seed_spearman"]["values"]) == ["0", "1"]
    rows = results[results["proxy"] == "d2m"]
    assert d2m["seconds_per_arch"] == pytest.approx(rows["seconds"].sum() / 3)
    # changing a training setting into the same directory is refused, not silently mixed
    assert main([*argv[:argv.index("--steps") + 1], "4", *argv[argv.index("--steps") + 2:]]) == 2
    assert "d2m proxy settings" in capsys.readouterr().err


@pytest.mark.parametrize("extra, fragment", [
    (["--proxy", "d2m"], "--proxy d2m needs --generator RUN"),
    (["--proxy", "d2m", "--generator", "{tmp}"], "holds no generator.pt"),
    (["--proxy", "d2m-stream", "--generator", "{tmp}/missing.pt"], "generator checkpoint not found"),
    (["--proxy", "d2m", "--generator", "{corrupt}"], "not a readable checkpoint"),
    (["--proxy", "pretrained-generator", "--generator", "{run}/generator.pt"], "is the distilled one"),
    (["--proxy", "random-subset", "--ipc", "0"], "--ipc: must be a whole number >= 1"),
    (["--proxy", "random-subset", "--ipc", "251"], "--ipc 251 exceeds the 250 training images per class"),
    (["--proxy", "real-stream", "--steps", "0"], "--steps: must be a whole number >= 1"),
    (["--proxy", "dm"], "--proxy dm needs --dm-set FILE"),
    (["--proxy", "dm", "--dm-set", "{small}"], "image_size 16 vs 32"),
    (["--proxy", "real-stream", "--proxy-seeds", "0"], "--proxy-seeds: must be a whole number >= 1"),
])
def test_bad_training_proxy_input_is_one_line_error_exit_2(tmp_path, table, generator_run, capsys, extra, fragment):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint" * 10)
    small = SyntheticSet(torch.zeros(10, 3, 16, 16), torch.arange(10), {
        "dataset": "fake", "image_size": 16, "channels": 3, "num_classes": 10, "mean": [0.5] * 3, "std": [0.25] * 3,
        "ipc": 1, "method": "dm", "seed": 0}).save(tmp_path / "small.pt")
    extra = [e.format(tmp=tmp_path, corrupt=corrupt, small=small, run=generator_run) for e in extra]
    assert main(rank_argv(tmp_path / "r", table, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("d2m-nas rank: error:") and fragment in err and "\n" not in err
    assert not (tmp_path / "r").exists()  # refused before a run directory is made


def test_the_generator_stream_is_drawn_once_per_seed_and_replayed_to_every_architecture(fake, split, generator_run):
    stream = proxy("d2m-stream", generator=str(generator_run))
    source = stream.image_source(context(fake, split, seed=0))
    assert stream.image_source(context(fake, split, seed=0)) is source  # the next architecture replays it
    assert stream.image_source(context(fake, split, seed=1)) is not source
    batches = _take(source, 4, None)  # steps=4 batches of 16: every step brings new images
    assert len(torch.unique(torch.cat([x for x, _ in batches]).flatten(1), dim=0)) == 64
    with pytest.raises(RuntimeError, match="exhausted"):
        _take(source, 5, None)
    live = stream.live_stream(CPU).stream(16, torch.Generator().manual_seed(0))
    for (x, y), (live_x, live_y) in zip(batches, (next(live) for _ in range(4))):
        assert torch.allclose(x, live_x) and torch.equal(y, live_y)


def test_per_proxy_settings_override_the_commands_and_key_the_cache_by_content(fake, split):
    common = TrainingProxyConfig(ipc=5, steps=20)
    small = create_proxy("random-subset[steps=8, ipc=2]@tse_e", common)
    assert (small.settings.ipc, small.settings.steps, small.rule) == (2, 8, "tse_e")
    assert small.name == "random-subset[ipc=2,steps=8]" and small.label == "random-subset[ipc=2,steps=8]@tse_e"
    assert create_proxy("random-subset[lr=0.1]", common).name == "random-subset[lr=0.1]"
    # the same settings reached by flags or by the spec are one configuration in the cache
    ctx = context(fake, split)
    by_flags = create_proxy("random-subset", TrainingProxyConfig(ipc=2, steps=8))
    assert config_key(proxy_config(small, ctx)) == config_key(proxy_config(by_flags, ctx))
    for spec, fragment in [("random-subset[ipc=x]", "ipc needs a int value"),
                           ("random-subset[depth=3]", "unknown setting 'depth'; a proxy may set ipc, steps"),
                           ("random-subset[ipc=2", "per-proxy settings are NAME[key=value,...]"),
                           ("synflow[steps=3]", "settings apply to training-based proxies only")]:
        with pytest.raises(UserError, match=re.escape(fragment)):
            create_proxy(spec, common)


def test_rank_runs_two_budgets_of_one_source_side_by_side(tmp_path, table, capsys):
    out = tmp_path / "run"
    argv = rank_argv(out, table, "--proxy", "random-subset[ipc=2],random-subset[ipc=3,steps=2],params")
    assert main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    images = results.groupby("proxy")["train_images"].first()
    assert images["random-subset[ipc=2]"] == 20 and images["random-subset[ipc=3,steps=2]"] == 30
    steps = results.groupby("proxy")["steps"].first()
    assert steps["random-subset[ipc=2]"] == 3 and steps["random-subset[ipc=3,steps=2]"] == 2
    assert "| random-subset[ipc=2]@val_acc | 3 |" in capsys.readouterr().out


def test_bf16_and_channels_last_are_settings_of_their_own_and_keep_the_earlier_cache_keys(fake, split):
    ctx = context(fake, split)
    plain = proxy("random-subset")
    # a setting added after scores were cached is keyed only when set: the default's key is unchanged
    assert not {"precision", "memory_format"} & set(proxy_config(plain, ctx)["settings"])
    bf16, last = proxy("random-subset", precision="bf16"), proxy("random-subset", memory_format="channels_last")
    keys = {config_key(proxy_config(p, ctx)) for p in (plain, bf16, last)}
    assert len(keys) == 3
    assert create_proxy("random-subset[precision=bf16]", TrainingProxyConfig()).settings.precision == "bf16"
    with pytest.raises(UserError, match="precision must be one of fp32, bf16, got 'fp16'"):
        create_proxy("random-subset[precision=fp16]", TrainingProxyConfig())

    reference = plain.score(ARCHS[0], ctx).extra["trace"]["train_losses"]
    # channels_last changes only the layout: the same losses up to the kernels' summation order
    assert last.score(ARCHS[0], ctx).extra["trace"]["train_losses"] == pytest.approx(reference, rel=1e-4)
    # bf16 rounds the matmuls: close to fp32's losses, not equal
    rounded = bf16.score(ARCHS[0], ctx).extra["trace"]["train_losses"]
    assert rounded == pytest.approx(reference, rel=0.05) and rounded != pytest.approx(reference, rel=1e-6)
