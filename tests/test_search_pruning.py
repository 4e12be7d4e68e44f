"""Multi-fidelity search: a training-style proxy reports at its checkpoints, the pruner stops
candidates, pruned trials keep their partial score and seconds, never become the pick, survive a
kill -9 and a resume without being trained again; and the warm start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from d2m_nas.proxies import ProxyContext
from d2m_nas.search import SearchConfig, read_results, run_search
from d2m_nas.search.storage import default_storage_url, open_storage
from tests.test_search_optuna import SPACE, fake_truths

REPO = Path(__file__).resolve().parents[1]

FAKE = textwrap.dedent("""
    import hashlib, os, signal
    from types import SimpleNamespace
    from d2m_nas.proxies.base import Proxy, ProxyScore
    from d2m_nas.proxies.training import Stopped

    class Curves(Proxy):
        '''Learning curves from the architecture's hash: value = quality * step / 4, 0.25 s a step.'''

        name, needs_data, rule = "curves", False, "val_acc"
        settings = SimpleNamespace(steps=4)

        def __init__(self, log=None, kill_at=None):
            self.log, self.kill_at, self.started = log, kill_at, []

        def config(self):
            return {"kind": "curves"}

        def score(self, arch, context, on_checkpoint=None):
            self.started.append(arch)
            if self.kill_at is not None and len(self.started) == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if self.log:
                with open(self.log, "a") as handle:
                    handle.write(arch + "\\n")
            quality = int(hashlib.sha256(arch.encode()).hexdigest()[:8], 16) / 2**32
            for step in (1, 2, 3):
                if on_checkpoint is not None and on_checkpoint(step, {"val_acc": quality * step / 4}):
                    raise Stopped(ProxyScore(quality * step / 4, 0.25 * step, {"steps": step}))
            return ProxyScore(quality, 1.0, {"steps": 4})
""")
_namespace: dict = {}
exec(FAKE, _namespace)  # the same class in this process and in the killed one
Curves = _namespace["Curves"]


def config(**overrides):
    return SearchConfig(**{"trials": 16, "study": "p", "progress": False, "pruner": "median", **overrides})


def test_pruned_trials_keep_their_partial_cost_and_are_never_the_pick(tmp_path):
    proxy = Curves()
    summary = run_search(proxy, ProxyContext(
        space=SPACE, dataset=None), config(), tmp_path / "run", truths=fake_truths(), truth_column="fake_acc")
    frame = read_results(tmp_path / "run" / "results.csv")
    pruned = frame[frame["state"] == "pruned"]
    assert len(frame) == 16 and len(pruned) >= 1, "the median pruner stopped nothing"
    assert (pruned["steps"] < 4).all() and (pruned["seconds"] == 0.25 * pruned["steps"]).all()
    complete = frame[frame["state"] == "complete"]
    assert (complete["steps"] == 4).all() and (complete["seconds"] == 1.0).all()
    study = summary["searches"][0]["studies"]["p"]
    assert study["pruned"] == len(pruned) and study["best_arch"] in set(complete["arch"])
    assert study["cost_s"] == pytest.approx(pruned["seconds"].sum() + complete.drop_duplicates("arch")["seconds"].sum())
    states = {t.number: t.state for t in optuna.load_study(study_name="p", storage=open_storage(
        default_storage_url(tmp_path / "run"))).trials}
    assert {n for n, s in states.items() if s == TrialState.PRUNED} == set(pruned["trial"])


KILLED = FAKE + textwrap.dedent("""
    import sys
    from d2m_nas.proxies.base import ProxyContext
    from d2m_nas.search import SearchConfig, run_search
    from search_spaces.registry import create_space

    run_dir, log = sys.argv[1], sys.argv[2]
    run_search(Curves(log, kill_at=12), ProxyContext(space=create_space("nasbench201"), dataset=None),
               SearchConfig(trials=16, study="p", progress=False, pruner="median"), run_dir)
""")


def test_pruned_trials_survive_kill_9_and_resume_without_training_again(tmp_path):
    script, log, run_dir = tmp_path / "killed.py", tmp_path / "log", tmp_path / "run"
    script.write_text(KILLED)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), str(run_dir), str(log)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    before = read_results(run_dir / "results.csv")
    assert 11 <= len(before) < 16 and (before["state"] == "pruned").any()  # (repeats are cache hits: no call)
    resumed = Curves()
    run_search(resumed, ProxyContext(
        space=SPACE, dataset=None), config(), run_dir)
    after = read_results(run_dir / "results.csv")
    assert len(after) == 16 and not after.duplicated(["study", "trial"]).any()
    kept = after.set_index("trial").loc[before["trial"], ["arch", "state", "score", "seconds"]]
    assert kept.reset_index(drop=True).equals(before[["arch", "state", "score", "seconds"]].reset_index(drop=True))
    # only the killed trial's retry and the trials never started were trained (at most: repeats hit the cache)
    assert 1 <= len(resumed.started) <= 16 - len(before)
    assert after["retry_of"].notna().sum() == 1


def test_warm_start_enqueues_the_zero_cost_top_k_first_and_charges_its_scoring(tmp_path):
    from d2m_nas.proxies import create_proxy
    from tests.test_search_optuna import FakeProxy

    context = ProxyContext(space=SPACE, dataset=None)
    summary = run_search(FakeProxy(), context, config(pruner="none", warm_start="params:3", warm_start_pool=20,
                                                      trials=5), tmp_path / "run")
    frame = read_results(tmp_path / "run" / "results.csv")
    params = create_proxy("params")
    pool = SPACE.sample(20, 0)
    top = sorted(pool, key=lambda a: -params.score(a, context).score)[:3]
    assert set(frame["arch"][:3]) == set(top)
    assert frame["seconds"].iloc[0] > 0.01 and summary["searches"][0]["studies"]["p"]["trials"] == 5
    with pytest.raises(ValueError, match="--warm-start must be PROXY:K"):
        config(warm_start="params")
    with pytest.raises(ValueError, match="optuna backend"):
        SearchConfig(backend="nni", strategy="random", pruner="median")


def test_a_proxy_budget_stops_the_study_at_equal_proxy_seconds(tmp_path):
    summary = run_search(Curves(), ProxyContext(space=SPACE, dataset=None),
                         config(pruner="none", trials=50, proxy_budget=3.5), tmp_path / "run")
    frame = read_results(tmp_path / "run" / "results.csv")
    spent = frame.loc[frame["cached"] == 0, "seconds"].sum()
    assert 3.5 <= spent < 3.5 + 1.0 and summary["searches"][0]["studies"]["p"]["trials"] == len(frame) < 50
    with pytest.raises(ValueError, match="proxy budget must be positive"):
        config(proxy_budget=0)


@pytest.mark.parametrize("extra, fragment", [
    (["--proxy", "params", "--pruner", "median"], "--pruner median needs a training-based proxy"),
    (["--proxy", "params", "--warm-start", "random-subset:3"], "--warm-start takes a zero-cost proxy"),
    (["--proxy", "params", "--warm-start", "synflow"], "--warm-start must be PROXY:K"),
    (["--proxy", "params", "--backend", "nni", "--strategy", "random", "--proxy-budget", "5"], "optuna backend"),
    (["--proxy", "synflow+synflow"], "lists a component twice"),
])
def test_bad_multi_fidelity_options_are_one_line_errors(tmp_path, capsys, extra, fragment):
    from d2m_nas.cli import main

    assert main(["search", *extra, "--trials", "2", "--device", "cpu", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and not (tmp_path / "r").exists()
