"""The tiny pipeline end to end (pre-train -> D2M -> generate -> evaluate), resumption, DM, the CLI."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace

import pytest
import torch
import yaml

from d2m_nas import cli
from d2m_nas.data import load_dataset
from d2m_nas.data.sources import make_fake_dataset
from d2m_nas.distill_runs import preset, run_d2m, run_dm
from d2m_nas.generator_files import synthesize_from_generator
from d2m_nas.errors import UserError
from d2m_nas.evaluation import EvalConfig, evaluate_synthetic
from d2m_nas.synthetic import SyntheticSet
from distill.d2m import pool_seed

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def fake():
    return make_fake_dataset(train_per_class=12, test_per_class=4)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, fake):
    out = tmp_path_factory.mktemp("d2m")
    result = run_d2m(fake, preset("tiny"), out, CPU, progress=False)
    assert result["finished"]
    return out


def _rows(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_pipeline_pretrain_distill_generate_evaluate(finished_run, fake):
    for name in ("generator_pretrained.pt", "generator.pt", "losses.csv", "pretrain_losses.csv", "summary.json"):
        assert (finished_run / name).is_file(), name
    rows = _rows(finished_run / "losses.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) >= {"attention", "embedding", "prediction", "total", "seconds"}
    assert all(float(r["total"]) > 0 for r in rows)

    synthetic = synthesize_from_generator(finished_run, ipc=3, seed=1, device=CPU)
    assert len(synthetic) == 30 and synthetic.images.shape[1:] == (3, 32, 32)
    assert synthetic.metadata["method"] == "d2m" and synthetic.metadata["ipc"] == 3
    again = synthesize_from_generator(finished_run, ipc=3, seed=1, device=CPU)
    assert torch.equal(synthetic.images, again.images)
    before = synthesize_from_generator(finished_run, ipc=3, seed=1, device=CPU, stage="pretrained")
    assert before.metadata["method"] == "gan-pretrained"
    assert not torch.allclose(before.images, synthetic.images)  # D2M changed the generator

    config = EvalConfig(model="convnet-d1-w8-relu-instancenorm-avgpool", epochs=2, batch_size=16)
    report = evaluate_synthetic(synthetic, fake, config, runs=2, device=CPU, seed=0, progress=False)
    assert len(report.accuracies) == 2 and all(0 <= a <= 100 for a in report.accuracies)


def test_synthesized_set_round_trips_through_the_file_format(finished_run, tmp_path):
    path = synthesize_from_generator(finished_run, ipc=2, seed=0, device=CPU).save(tmp_path / "s.pt")
    loaded = SyntheticSet.load(path)
    assert len(loaded) == 20 and loaded.metadata["stage"] == "distilled"


def _state(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_interrupted_run_resumes_to_the_same_result(tmp_path, fake, finished_run, monkeypatch):
    whole = finished_run  # the same settings, never interrupted (checkpoint_every does not change results)
    settings = replace(preset("tiny"), checkpoint_every=2)
    monkeypatch.setattr("d2m_nas.distill_runs.SYNC_EVERY", 1)  # every row written at once, as on a CPU-bound run

    cut = tmp_path / "cut"
    first = run_d2m(fake, settings, cut, CPU, progress=False, stop_after=3)  # killed in pre-training
    assert not first["finished"] and first["phase"] == "pre-train"
    assert torch.load(cut / "pretrain_state.pt", weights_only=True)["state"]["step"] == 2
    assert len(_rows(cut / "pretrain_losses.csv")) == 3  # logged past the checkpoint...
    second = run_d2m(fake, settings, cut, CPU, progress=False, stop_after=2)  # finishes pre-training, killed in D2M
    assert second["phase"] == "D2M" and not second["finished"]
    assert len(_rows(cut / "pretrain_losses.csv")) == 4  # ...and those rows were redone, not duplicated
    assert run_d2m(fake, settings, cut, CPU, progress=False)["finished"]

    for name in ("generator_pretrained.pt", "generator.pt"):
        a, b = _state(whole / name), _state(cut / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert _rows(whole / "losses.csv") == [dict(r, seconds=w["seconds"]) for r, w in
                                           zip(_rows(cut / "losses.csv"), _rows(whole / "losses.csv"))]


def test_resuming_with_other_settings_is_refused(tmp_path, fake):
    settings = replace(preset("tiny"), checkpoint_every=1)
    run_d2m(fake, settings, tmp_path, CPU, progress=False, stop_after=2)
    other = replace(settings, pretrain=replace(settings.pretrain, lr_g=1e-3))
    with pytest.raises(UserError, match="other settings.*lr_g"):
        run_d2m(fake, other, tmp_path, CPU, progress=False)
    longer = replace(settings, pretrain=replace(settings.pretrain, steps=6))  # training longer is allowed
    assert run_d2m(fake, longer, tmp_path, CPU, progress=False)["finished"]


def test_a_run_saved_before_a_setting_existed_resumes_when_it_is_left_at_its_default(tmp_path, fake, finished_run):
    """A checkpoint written by an older version lacks the settings added since (here the latent pool
    and its rate, nested in the generator's and D2M's sections): they count as their defaults."""
    settings = replace(preset("tiny"), checkpoint_every=1)
    start = finished_run / "generator_pretrained.pt"
    assert not run_d2m(fake, settings, tmp_path, CPU, generator_path=start, progress=False, stop_after=2)["finished"]
    state = tmp_path / "d2m_state.pt"
    payload = torch.load(state, weights_only=True)
    for section, key in (("d2m", "latent_pool"), ("d2m", "latent_lr"), ("d2m", "latent_init"), ("d2m", "inversion_steps"),
                         ("d2m", "tuning_steps"), ("d2m", "tuning_lr"), ("d2m", "tuning_batch"), ("d2m", "match_first"),
                         ("generator", "latent_pool")):
        del payload["settings"][section][key]
    torch.save(payload, state)
    pooled = replace(settings, d2m=replace(settings.d2m, latent_pool=2))
    with pytest.raises(UserError, match="other settings.*latent_pool"):  # the old run had no pool
        run_d2m(fake, pooled, tmp_path, CPU, generator_path=start, progress=False)
    assert run_d2m(fake, settings, tmp_path, CPU, generator_path=start, progress=False)["finished"]
    a, b = _state(finished_run / "generator.pt"), _state(tmp_path / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # resumed, not restarted elsewhere


def test_a_run_started_class_by_class_resumes_with_all_classes_at_once(tmp_path, fake, finished_run):
    """--batch-classes changes how, not what: a resumed run may switch it, and ends where the
    uninterrupted class-by-class run did."""
    settings = preset("tiny")
    short = replace(settings, d2m=replace(settings.d2m, iterations=1))
    assert run_d2m(fake, short, tmp_path, CPU, progress=False)["finished"]  # one D2M iteration, class by class
    middle = _state(tmp_path / "generator.pt")
    batched = replace(settings, d2m=replace(settings.d2m, batch_classes=True))  # then two more, all at once
    assert run_d2m(fake, batched, tmp_path, CPU, progress=False)["finished"]
    a, b = _state(finished_run / "generator.pt"), _state(tmp_path / "generator.pt")
    assert a.keys() == b.keys()
    for k in a:  # batched convolutions round otherwise, and Adam's steps amplify that (0.3-0.6 % of the
        # move on an AMD host): the two paths must agree to a small part of how far these iterations moved
        gap, moved = float((a[k].float() - b[k].float()).norm()), float((a[k].float() - middle[k].float()).norm())
        assert gap <= 0.03 * moved or gap == 0, (k, gap, moved)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert "batch_classes" not in summary["d2m"]["settings"]["d2m"]  # not part of what a resume must match


def test_a_latent_pool_is_learned_saved_and_resumed_to_the_same_generator(tmp_path, fake, finished_run):
    settings = replace(preset("tiny"), checkpoint_every=1)
    pooled = replace(settings, d2m=replace(settings.d2m, latent_pool=3))
    start = finished_run / "generator_pretrained.pt"  # D2M alone, from the finished run's pre-training
    assert run_d2m(fake, pooled, tmp_path / "whole", CPU, generator_path=start, progress=False)["finished"]
    cut = tmp_path / "cut"
    assert not run_d2m(fake, pooled, cut, CPU, generator_path=start, progress=False, stop_after=2)["finished"]
    other = replace(settings, d2m=replace(settings.d2m, latent_pool=2))
    with pytest.raises(UserError, match="other settings.*latent_pool"):
        run_d2m(fake, other, cut, CPU, generator_path=start, progress=False)
    other = replace(settings, d2m=replace(pooled.d2m, latent_lr=0.1))
    with pytest.raises(UserError, match="other settings.*latent_lr"):
        run_d2m(fake, other, cut, CPU, generator_path=start, progress=False)
    assert run_d2m(fake, pooled, cut, CPU, generator_path=start, progress=False)["finished"]
    a, b = _state(tmp_path / "whole" / "generator.pt"), _state(cut / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    drawn = torch.randn(a["learned_z"].shape, generator=torch.Generator().manual_seed(pool_seed(pooled.d2m)))
    assert a["learned_z"].shape[:2] == (10, 3) and not torch.allclose(a["learned_z"], drawn)  # learned, not left
    assert "learned_z" not in _state(start)
    assert len(synthesize_from_generator(cut, 5, 0, CPU)) == 50  # IPC above the pool: 3 learned + 2 drawn a class


def test_a_pool_started_from_real_images_resumes_to_the_same_generator(tmp_path, fake, finished_run):
    settings = replace(preset("tiny"), checkpoint_every=1)
    real = replace(settings, d2m=replace(settings.d2m, latent_pool=3, syn_per_class=3, latent_init="real",
                                         inversion_steps=5, tuning_steps=2, tuning_batch=2, match_first=1))
    start = finished_run / "generator_pretrained.pt"
    whole = run_d2m(fake, real, tmp_path / "whole", CPU, generator_path=start, progress=False)
    assert whole["finished"] and whole["start_psnr"].keys() == {"inverted", "tuned"}
    cut = tmp_path / "cut"
    assert not run_d2m(fake, real, cut, CPU, generator_path=start, progress=False, stop_after=2)["finished"]
    with pytest.raises(UserError, match="other settings.*latent_init"):
        run_d2m(fake, replace(real, d2m=replace(real.d2m, latent_init="normal", tuning_steps=0, tuning_batch=0)), cut,
                CPU, generator_path=start, progress=False)
    for change in ({"match_first": 2}, {"match_first": (1, 2)}, {"tuning_batch": 3}, {"tuning_lr": 1e-2}):
        with pytest.raises(UserError, match=f"other settings.*{next(iter(change))}"):
            run_d2m(fake, replace(real, d2m=replace(real.d2m, **change)), cut, CPU, generator_path=start, progress=False)
    resumed = run_d2m(fake, real, cut, CPU, generator_path=start, progress=False)
    assert resumed["finished"] and resumed["start_psnr"] == whole["start_psnr"]  # the start's record kept by resume
    assert json.loads((cut / "summary.json").read_text())["d2m"]["start_psnr"] == whole["start_psnr"]
    a, b = _state(tmp_path / "whole" / "generator.pt"), _state(cut / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    unstarted = replace(real, d2m=replace(real.d2m, iterations=0))  # no iteration: the inverted start alone
    assert run_d2m(fake, unstarted, tmp_path / "zero", CPU, generator_path=start, progress=False)["finished"]
    pool = _state(tmp_path / "zero" / "generator.pt")["learned_z"]
    assert not torch.equal(pool, torch.randn(pool.shape, generator=torch.Generator().manual_seed(pool_seed(real.d2m))))
    with pytest.raises(UserError, match="a latent pool of 13 starts from as many real images"):
        run_d2m(fake, replace(real, d2m=replace(real.d2m, latent_pool=13, syn_per_class=13)), tmp_path / "big", CPU,
                generator_path=start, progress=False)


def test_a_real_start_saved_alone_then_distilled_equals_one_run(tmp_path, fake, finished_run):
    """`--iterations 0` saves the inverted start; distilling from that generator is the same run."""
    settings = preset("tiny")
    d2m = replace(settings.d2m, latent_pool=3, learn="latents", lr=0.01)
    start = finished_run / "generator_pretrained.pt"
    one = replace(settings, d2m=replace(d2m, latent_init="real", inversion_steps=5, tuning_steps=3))
    run_d2m(fake, one, tmp_path / "one", CPU, generator_path=start, progress=False)
    run_d2m(fake, replace(one, d2m=replace(one.d2m, iterations=0)), tmp_path / "zero", CPU, generator_path=start,
            progress=False)
    run_d2m(fake, replace(settings, d2m=d2m), tmp_path / "two", CPU, generator_path=tmp_path / "zero", progress=False)
    a, b = _state(tmp_path / "one" / "generator.pt"), _state(tmp_path / "two" / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # tuned weights and learned pool
    assert json.loads((tmp_path / "zero" / "summary.json").read_text())["d2m"]["elapsed_s"] > 0  # the start's time
    tuned, pretrained = _state(tmp_path / "zero" / "generator.pt"), _state(start)
    assert any(not torch.equal(tuned[k], v) for k, v in pretrained.items() if v.is_floating_point())
    # the inversion saved alone, then tuned from its latents (no inversion step): the same start
    zero = replace(one, d2m=replace(one.d2m, iterations=0))
    inverted = run_d2m(fake, replace(zero, d2m=replace(zero.d2m, tuning_steps=0)), tmp_path / "inverted", CPU,
                       generator_path=start, progress=False)
    retuned = run_d2m(fake, replace(zero, d2m=replace(zero.d2m, inversion_steps=0)), tmp_path / "retuned", CPU,
                      generator_path=tmp_path / "inverted", progress=False)
    again = _state(tmp_path / "retuned" / "generator.pt")
    assert again.keys() == tuned.keys() and all(torch.equal(again[k], tuned[k]) for k in tuned)
    # the recorded reconstruction: the same start reads the same, and tuning the weights to it sharpens it
    summary = json.loads((tmp_path / "zero" / "summary.json").read_text())["d2m"]["start_psnr"]
    assert inverted["start_psnr"] == {"inverted": summary["inverted"]}
    assert retuned["start_psnr"] == summary and summary["tuned"] > summary["inverted"]
    assert "start_psnr" not in json.loads((tmp_path / "two" / "summary.json").read_text())["d2m"]  # no real start


def test_the_real_starts_progress_shows_in_a_log_when_progress_is_on(tmp_path, fake, finished_run, capsys):
    """The inversion and tuning can take half an hour before D2M's first step: a run logging to a
    file (stderr not a terminal, as under pytest) shows their bars as it shows D2M's, and none with progress off."""
    settings = preset("tiny")
    real = replace(settings, d2m=replace(settings.d2m, iterations=0, latent_pool=2, latent_init="real",
                                         inversion_steps=2, tuning_steps=2))
    start = finished_run / "generator_pretrained.pt"
    run_d2m(fake, real, tmp_path / "shown", CPU, generator_path=start, progress=True)
    shown = capsys.readouterr().err
    assert "inverting the latent pool" in shown and "tuning the generator to the pool's images" in shown
    run_d2m(fake, real, tmp_path / "quiet", CPU, generator_path=start, progress=False)
    assert "inverting" not in capsys.readouterr().err


def test_a_run_with_trained_matching_nets_resumes_to_the_same_generator(tmp_path, fake, finished_run):
    settings = replace(preset("tiny"), checkpoint_every=1)
    queued = replace(settings, d2m=replace(settings.d2m, trained_nets=2, net_max_steps=1))
    start = finished_run / "generator_pretrained.pt"
    assert run_d2m(fake, queued, tmp_path / "whole", CPU, generator_path=start, progress=False)["finished"]
    cut = tmp_path / "cut"
    assert not run_d2m(fake, queued, cut, CPU, generator_path=start, progress=False, stop_after=2)["finished"]
    with pytest.raises(UserError, match="other settings.*trained_nets"):
        run_d2m(fake, settings, cut, CPU, generator_path=start, progress=False)
    assert run_d2m(fake, queued, cut, CPU, generator_path=start, progress=False)["finished"]
    a, b = _state(tmp_path / "whole" / "generator.pt"), _state(cut / "generator.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    plain = _state(finished_run / "generator.pt")  # the same start matched through fresh random nets
    assert any(not torch.equal(a[k], plain[k]) for k in a)
    rows = _rows(cut / "losses.csv")
    assert len(rows) == queued.d2m.iterations and all(math.isfinite(float(r["net_loss"])) for r in rows)


def test_the_latent_drift_benchmark_measures_the_pool_from_its_own_start(tmp_path, fake, finished_run, benchmark_script):
    script = benchmark_script("latent_drift")
    settings = preset("tiny")  # 3 iterations
    start = finished_run / "generator_pretrained.pt"
    for name, latent_lr in (("slow", None), ("fast", 0.05)):
        pooled = replace(settings, d2m=replace(settings.d2m, latent_pool=2, latent_lr=latent_lr))
        run_d2m(fake, pooled, tmp_path / name, CPU, generator_path=start, progress=False)
    slow, fast = script.main([str(tmp_path / "slow"), str(tmp_path / "fast")])
    lr = settings.d2m.lr
    # Adam with beta1 = 0 (beta2 = 0.999) moves a coordinate by at most lr * sqrt((1 - 0.999^t) / 0.001)
    # at step t: the drift is measured from the run's own start (a wrong start shows changes of order 1)
    bound = sum(math.sqrt((1 - 0.999 ** t) / 0.001) for t in (1, 2, 3)) * 1.001
    assert 0 < slow["max_abs_change"] <= bound * lr and slow["latent_lr"] is None
    assert bound * lr < fast["max_abs_change"] <= bound * 0.05 and fast["iterations"] == 3
    with pytest.raises(SystemExit, match="no latent pool"):
        script.main([str(finished_run)])


def test_set_diversity_compares_a_set_with_the_real_class_statistics(tmp_path, finished_run, benchmark_script):
    script = benchmark_script("set_diversity")
    g = torch.Generator().manual_seed(0)
    real, labels = torch.randn(40, 6, generator=g), torch.arange(2).repeat_interleave(20)
    reference = script.class_statistics(real, labels, 2)
    assert script.compare(real, labels, reference) == pytest.approx((1.0, 0.0))  # the reference itself
    means, spreads = reference
    collapsed = means[labels]  # every image its class's mean: no spread, no gap
    assert script.compare(collapsed, labels, reference) == pytest.approx((0.0, 0.0), abs=1e-6)
    shift = torch.tensor([1.0, 0, 0, 0, 0, 0])
    spread, gap = script.compare(real + shift, labels, reference)  # the spread is kept, the means move by |shift|
    assert spread == pytest.approx(1.0) and gap == pytest.approx(float((1 / spreads).mean()))
    records = script.main(["--dataset", "fake", "--ipcs", "2", "3", "--nets", "2", "--reference-per-class", "20",
                           "--set", "real=random", "--set", f"d2m=d2m:{finished_run}", "--out", str(tmp_path / "d.jsonl")])
    assert [(r["set"], r["ipc"]) for r in records] == [("real", 2), ("real", 3), ("d2m", 2), ("d2m", 3)]
    assert all(r["spread_ratio"] > 0 and r["mean_gap"] > 0 and r["pixel_spread_ratio"] > 0 for r in records)
    assert len((tmp_path / "d.jsonl").read_text().splitlines()) == 4
    for bad in ("x=d2m", "x=random:RUN", "=random", "x=gan:RUN"):
        with pytest.raises(ValueError, match="expected LABEL=random or LABEL=KIND:RUN"):
            script.parse_set(bad)


def test_inversion_quality_reports_how_close_the_inverted_images_come(finished_run, benchmark_script):
    script = benchmark_script("inversion_quality")
    records = script.main(["--dataset", "fake", "--generator", str(finished_run / "generator_pretrained.pt"),
                           "--per-class", "2", "--steps", "15", "--lrs", "0.03", "0.1", "--val-per-class", "2"])
    assert [r["lr"] for r in records] == [0.03, 0.1] and all(r["images"] == 20 for r in records)
    assert all(r["psnr"] > r["start_psnr"] and math.isfinite(r["flat_psnr"]) and r["seconds"] > 0 for r in records)
    tuned = script.main(["--dataset", "fake", "--generator", str(finished_run / "generator_pretrained.pt"),
                         "--per-class", "2", "--steps", "15", "--val-per-class", "2", "--tune-steps", "10",
                         "--tune-lrs", "1e-3"])
    assert [(r.get("tune_lr"), r["psnr"]) for r in tuned] == [(None, tuned[0]["psnr"]), (1e-3, tuned[0]["psnr"])]
    assert tuned[1]["tuned_psnr"] > tuned[1]["psnr"] and tuned[1]["tune_steps"] == 10



def test_inversion_quality_scores_a_runs_saved_pool_against_its_start(tmp_path, finished_run, benchmark_script):
    script = benchmark_script("inversion_quality")
    data = load_dataset("fake", None)  # what the script loads for --dataset fake
    zero = replace(preset("tiny"), d2m=replace(preset("tiny").d2m, iterations=0, latent_pool=3, latent_init="real",
                                                inversion_steps=5))
    start = finished_run / "generator_pretrained.pt"
    for name, steps in (("inverted", 0), ("tuned", 10)):
        run_d2m(data, replace(zero, d2m=replace(zero.d2m, tuning_steps=steps)), tmp_path / name, CPU,
                generator_path=start, progress=False)
    common = ["--dataset", "fake", "--val-per-class", "0", "--seed", str(zero.d2m.seed)]
    saved = {name: script.main(common + ["--generator", str(tmp_path / name), "--stage", "distilled", "--saved-pool"])
             for name in ("inverted", "tuned")}
    fresh = script.main(common + ["--generator", str(start), "--per-class", "3", "--steps", "5"])
    assert saved["inverted"][0]["saved_pool_psnr"] == fresh[0]["psnr"]  # the same targets, start and steps
    assert saved["tuned"][0]["saved_pool_psnr"] > saved["inverted"][0]["saved_pool_psnr"]
    with pytest.raises(SystemExit, match="has no latent pool"):
        script.main(common + ["--generator", str(start), "--saved-pool"])


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, fake, monkeypatch):
    from distill.d2m import D2MTrainer

    original = D2MTrainer.step

    def poisoned(self):
        if self.step_count == 2:  # a weight goes NaN, as after an exploding update
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
        return original(self)

    monkeypatch.setattr(D2MTrainer, "step", poisoned)
    settings = replace(preset("tiny"), checkpoint_every=1)
    with pytest.raises(UserError, match=r"D2M diverged at step 3 .*last good checkpoint") as info:
        run_d2m(fake, settings, tmp_path, CPU, progress=False)
    assert "\n" not in str(info.value)
    kept = torch.load(tmp_path / "d2m_state.pt", weights_only=True)["state"]
    assert kept["step"] == 2 and all(torch.isfinite(v).all() for v in kept["generator"].values()
                                     if v.is_floating_point())


def test_pretraining_logs_every_step_but_synchronises_every_few(tmp_path, fake):
    from d2m_nas.distill_runs import SYNC_EVERY

    steps = 2 * SYNC_EVERY + 3
    settings = replace(preset("tiny"), checkpoint_every=100, d2m=replace(preset("tiny").d2m, iterations=0),
                       pretrain=replace(preset("tiny").pretrain, steps=steps))
    run_d2m(fake, settings, tmp_path, CPU, progress=False)
    rows = _rows(tmp_path / "pretrain_losses.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, steps + 1))
    assert all(math.isfinite(float(r[k])) for r in rows for k in ("loss_d", "loss_g", "d_real", "d_fake", "seconds"))


def test_a_divergence_found_at_the_next_synchronisation_names_its_step(tmp_path, fake, monkeypatch):
    from distill.gan import GANPretrainer

    original = GANPretrainer.step

    def poisoned(self):
        if self.step_count == 2:
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
        return original(self)

    monkeypatch.setattr(GANPretrainer, "step", poisoned)
    settings = replace(preset("tiny"), checkpoint_every=2, pretrain=replace(preset("tiny").pretrain, steps=6))
    with pytest.raises(UserError, match=r"pre-train diverged at step 3 \(loss_d=nan"):
        run_d2m(fake, settings, tmp_path, CPU, progress=False)
    kept = torch.load(tmp_path / "pretrain_state.pt", weights_only=True)
    assert kept["state"]["step"] == 2  # checked before it was saved: no checkpoint holds the NaN
    assert [int(r["step"]) for r in _rows(tmp_path / "pretrain_losses.csv")] == [1, 2]


def test_dm_run_writes_a_synthetic_set(tmp_path, fake):
    settings = replace(preset("tiny"), dm=replace(preset("tiny").dm, ipc=2))
    result = run_dm(fake, settings, tmp_path, CPU, progress=False)
    assert result["finished"]
    synthetic = SyntheticSet.load(tmp_path / "synthetic.pt")
    assert len(synthetic) == 20 and synthetic.metadata["method"] == "dm" and synthetic.metadata["ipc"] == 2
    assert len(_rows(tmp_path / "losses.csv")) == settings.dm.iterations


def test_cli_distill_tiny_then_start_from_its_generator(tmp_path, capsys):
    first = tmp_path / "first"
    assert cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--out", str(first)]) == 0
    assert (first / "generator.pt").is_file()
    second = tmp_path / "second"
    assert cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--out", str(second),
                     "--generator", str(first / "generator_pretrained.pt"), "--learn", "conditional",
                     "--no-batch-classes"]) == 0
    assert not (second / "pretrain_state.pt").exists() and (second / "generator.pt").is_file()
    assert yaml.safe_load((second / "config.yaml").read_text())["batch_classes"] is False
    assert cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--out",
                     str(tmp_path / "pool"), "--generator", str(first / "generator_pretrained.pt"),
                     "--learn", "latents", "--latent-pool", "2", "--latent-lr", "0.05", "--trained-nets", "1"]) == 0
    config = yaml.safe_load((tmp_path / "pool" / "config.yaml").read_text())
    assert config["latent_lr"] == 0.05 and config["trained_nets"] == 1
    assert json.loads((tmp_path / "pool" / "summary.json").read_text())["d2m"]["settings"]["d2m"]["trained_nets"] == 1
    assert _state(tmp_path / "pool" / "generator.pt")["learned_z"].shape[:2] == (10, 2)
    capsys.readouterr()
    assert cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--out",
                     str(tmp_path / "real"), "--generator", str(first / "generator_pretrained.pt"), "--learn", "latents",
                     "--latent-pool", "2", "--latent-init", "real", "--inversion-steps", "2", "--tuning-steps", "2",
                     "--iterations", "0"]) == 0
    psnr = json.loads((tmp_path / "real" / "summary.json").read_text())["d2m"]["start_psnr"]
    assert (f"the real start reproduces its images at {psnr['inverted']:.2f} dB inverted, then {psnr['tuned']:.2f} dB "
            "tuned (PSNR)") in capsys.readouterr().out
    assert cli.main(["distill", "--dataset", "fake", "--preset", "tiny", "--device", "cpu", "--method", "dm",
                     "--ipc", "1", "--out", str(tmp_path / "dm")]) == 0
    assert len(SyntheticSet.load(tmp_path / "dm")) == 10


def test_the_cpu_pool_preset_is_the_cpu_generator_with_a_tuned_real_start_and_its_first_ten_matched():
    from d2m_nas.commands.distill import settings_from_args

    cpu, pool = preset("cpu"), preset("cpu-pool")
    assert (pool.generator_width, pool.pretrain, pool.dm) == (cpu.generator_width, cpu.pretrain, cpu.dm)
    assert (pool.d2m.latent_pool, pool.d2m.syn_per_class, pool.d2m.latent_init, pool.d2m.learn, pool.d2m.match_first,
            pool.d2m.tuning_batch) == (50, 50, "real", "latents", (10,), 50)
    assert replace(pool.d2m, syn_per_class=16, latent_pool=0, latent_init="normal", tuning_steps=0, tuning_batch=0,
                   tuning_lr=cpu.d2m.tuning_lr, learn="all", lr=cpu.d2m.lr, match_first=0) == cpu.d2m
    # the preset starts from real images, so its tuning options need no --latent-init
    args = cli.parse_args(["distill", "--preset", "cpu-pool", "--tuning-steps", "7", "--tuning-lr", "0.002"])
    assert (settings_from_args(args).d2m.tuning_steps, settings_from_args(args).d2m.tuning_lr) == (7, 0.002)
    with pytest.raises(UserError, match="--tuning-steps needs --latent-init real"):
        settings_from_args(cli.parse_args(["distill", "--preset", "cpu-pool", "--latent-init", "normal",
                                           "--tuning-steps", "7"]))


def test_distill_defaults_to_cpu_pool_and_a_rerun_keeps_the_preset_its_run_began_with(tmp_path):
    from d2m_nas.commands.distill import settings_from_args

    def settings(*argv):
        return settings_from_args(cli.parse_args(["distill", "--out", str(tmp_path), *argv]))

    assert settings() == preset("cpu-pool")  # a new run
    # a run started when the default was `cpu` resumes as it began, not refused as "other settings"
    (tmp_path / "config.yaml").write_text("command: distill\npreset: cpu\n")
    assert settings() == preset("cpu")
    assert settings("--preset", "cpu-pool") == preset("cpu-pool")  # an explicit preset wins
    (tmp_path / "config.yaml").write_text("command: rank\npreset: cpu\n")  # not a distill run: its key means nothing
    assert settings() == preset("cpu-pool")


@pytest.mark.parametrize("argv, message", [
    (["--method", "dm"], "needs --ipc"),
    (["--ipc", "3"], "applies to --method dm"),
    (["--preset", "huge"], "unknown preset"),
    (["--resume"], "no interrupted run"),
    (["--iterations", "-1"], "--iterations: must be a whole number >= 0"),
    (["--method", "dm", "--ipc", "1", "--latent-pool", "2"], "--latent-pool, --latent-lr, --latent-init, --inversion-steps, --tuning-steps, --tuning-lr, --tuning-batch and --match-first apply to --method d2m"),
    (["--method", "dm", "--ipc", "1", "--latent-lr", "0.01"], "--latent-pool, --latent-lr, --latent-init, --inversion-steps, --tuning-steps, --tuning-lr, --tuning-batch and --match-first apply to --method d2m"),
    (["--method", "dm", "--ipc", "1", "--latent-init", "real"], "--latent-pool, --latent-lr, --latent-init, --inversion-steps, --tuning-steps, --tuning-lr, --tuning-batch and --match-first apply to --method d2m"),
    (["--latent-init", "real"], "starting the latents from real images needs a latent pool"),
    (["--latent-pool", "2", "--inversion-steps", "5"], "--inversion-steps needs --latent-init real"),
    (["--latent-pool", "2", "--tuning-steps", "5"], "--tuning-steps needs --latent-init real"),
    (["--method", "dm", "--ipc", "1", "--tuning-steps", "5"], "--tuning-steps, --tuning-lr, --tuning-batch and --match-first apply to"),
    (["--method", "dm", "--ipc", "1", "--match-first", "2"], "--tuning-batch and --match-first apply to --method d2m"),
    (["--latent-pool", "2", "--tuning-batch", "5"], "--tuning-batch needs --latent-init real"),
    (["--latent-pool", "2", "--tuning-lr", "0.01"], "--tuning-lr needs --latent-init real"),
    (["--latent-pool", "4", "--syn-per-class", "4", "--match-first", "4"], "needs 0 < K < latent_pool and syn_per_class"),
    (["--latent-pool", "4", "--syn-per-class", "2", "--match-first", "2"], "needs 0 < K < latent_pool and syn_per_class"),
    (["--latent-pool", "4", "--syn-per-class", "4", "--match-first", "1,4"], "needs 0 < K < latent_pool and syn_per_class"),
    (["--latent-pool", "4", "--syn-per-class", "4", "--match-first", "1,x"], "--match-first: must be whole numbers >= 0 separated by commas"),
    (["--learn", "latents"], "needs a latent pool"),
    (["--latent-lr", "0.01"], "latent_lr needs a latent pool"),
    (["--method", "dm", "--ipc", "1", "--trained-nets", "2"], "--trained-nets, --net-lr and --net-max-steps apply to --method d2m"),
    (["--net-lr", "0.1"], "--net-lr and --net-max-steps need --trained-nets Q"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, message):
    # against the pool-less `cpu` preset, whose options the pool ones need (a later --preset wins)
    code = cli.main(["distill", "--dataset", "fake", "--preset", "cpu", "--device", "cpu", "--out", str(tmp_path / "r"),
                     *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
