"""The Optuna backend: results, resume, refusal of a foreign study, dead workers, several
processes on one study (journal file; PostgreSQL on loopback), and a kill -9 mid-trial."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore
from d2m_nas.score_cache import ScoreCache, proxy_config
from d2m_nas.search import SearchConfig, read_results, run_search
from d2m_nas.search.optuna_backend import StudyMismatchError
from d2m_nas.search.storage import StorageError, check_storage_url, default_storage_url, open_storage
from search_spaces.registry import create_space

REPO = Path(__file__).resolve().parents[1]
SPACE = create_space("nasbench201")
POSTGRES_ENV = "D2M_NAS_TEST_POSTGRES_URL"


class FakeProxy(Proxy):
    """Deterministic score from the architecture string; optionally slow; logs each evaluation.

    With `rendezvous=(folder, n)` the first score waits until n processes have each begun one, so a
    multi-process test does not depend on how fast each process happens to start.
    """

    name = "fake"
    needs_data = False

    def __init__(self, delay: float = 0.0, log: str | None = None, rendezvous: tuple[str, int] | None = None) -> None:
        self.delay, self.log, self.calls, self.rendezvous = delay, log, [], rendezvous

    def config(self) -> dict:
        return {"kind": "sha256"}  # delay and log do not change the score

    def _note(self, what: str, arch: str) -> None:
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(f"{what} {os.getpid()} {arch}\n")

    def _wait_for_the_others(self) -> None:
        folder, count = Path(self.rendezvous[0]), self.rendezvous[1]
        folder.mkdir(exist_ok=True)
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(folder.iterdir())) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def score(self, arch: str, context: ProxyContext) -> ProxyScore:
        if self.rendezvous and not self.calls:
            self._wait_for_the_others()
        self.calls.append(arch)
        self._note("start", arch)
        time.sleep(self.delay)
        self._note("done", arch)
        digest = hashlib.sha256(f"{arch}|{context.seed}".encode()).hexdigest()
        return ProxyScore(int(digest[:8], 16) / 2**32, self.delay + 0.01)


def truth_of(arch: str) -> float:
    return 80.0 + 10 * int(hashlib.md5(arch.encode()).hexdigest()[:6], 16) / 2**24


def fake_truths() -> pd.Series:
    archs = SPACE.enumerate()
    return pd.Series([truth_of(a) for a in archs], index=archs, name="fake_acc")


def search(tmp_path, proxy=None, **overrides):
    config = SearchConfig(**{"trials": 6, "study": "s", "progress": False, **overrides})
    context = ProxyContext(space=SPACE, dataset=None)
    proxy = proxy or FakeProxy()
    summary = run_search(proxy, context, config, tmp_path / "run", truths=fake_truths(), truth_column="fake_acc")
    return proxy, summary


def load(tmp_path, name="s"):
    return optuna.load_study(study_name=name, storage=open_storage(default_storage_url(tmp_path / "run")))


def test_rows_match_the_study_and_the_truth_stays_out_of_it(tmp_path):
    proxy, summary = search(tmp_path)
    frame = read_results(tmp_path / "run" / "results.csv")
    study = load(tmp_path)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert frame["trial"].tolist() == [t.number for t in complete] == list(range(6))
    assert frame["score"].tolist() == [t.value for t in complete]
    assert frame["arch"].tolist() == [SPACE.decode(t.params) for t in complete]
    assert frame["truth"].tolist() == pytest.approx([truth_of(a) for a in frame["arch"]])
    assert (frame["truth_column"] == "fake_acc").all() and (frame["backend"] == "optuna").all()
    for trial in complete:  # nothing the sampler can read carries the truth
        assert "truth" not in str(trial.user_attrs) and "truth" not in str(trial.system_attrs)
    assert summary["searches"][0]["studies"]["s"]["trials"] == 6
    best = frame.loc[frame["score"].idxmax()]
    assert summary["searches"][0]["studies"]["s"]["best_arch"] == best["arch"]
    assert summary["searches"][0]["studies"]["s"]["best_truth"] == pytest.approx(best["truth"])


def test_rerunning_resumes_without_rescoring(tmp_path):
    first, _ = search(tmp_path, trials=4)
    second, _ = search(tmp_path, trials=7)
    frame = read_results(tmp_path / "run" / "results.csv")
    assert frame["trial"].tolist() == list(range(7))
    assert len(first.calls) == 4 and len(second.calls) == 3  # the first four came from the study
    third, _ = search(tmp_path, trials=7)
    assert third.calls == []


def test_the_time_budget_stops_the_session(tmp_path):
    proxy, _ = search(tmp_path, proxy=FakeProxy(delay=0.3), trials=None, time_budget=3.0)
    frame = read_results(tmp_path / "run" / "results.csv")
    assert 1 <= len(frame) == len(proxy.calls)
    started = frame["elapsed_s"] - frame["seconds"]  # when each evaluation began (roughly)
    assert (started < 3.0 + 1.5).all()  # slack: the loop's own bookkeeping on a loaded machine


def test_nsga2_records_two_objectives(tmp_path):
    search(tmp_path, strategy="nsga2", cost_metric="seconds", population=4)
    frame = read_results(tmp_path / "run" / "results.csv")
    study = load(tmp_path)
    assert len(study.directions) == 2
    assert (frame["cost_metric"] == "seconds").all()
    assert [t.values for t in study.get_trials(states=(TrialState.COMPLETE,))] == \
        [[s, c] for s, c in zip(frame["score"], frame["cost"])]


def test_repeats_run_one_study_per_seed(tmp_path):
    config = SearchConfig(trials=3, study="r", strategy="random", seed=5, progress=False)
    summary = run_search(FakeProxy(), ProxyContext(space=SPACE, dataset=None), config, tmp_path / "run", repeat=2)
    frame = read_results(tmp_path / "run" / "results.csv")
    assert sorted(summary["searches"][0]["studies"]) == ["r-seed5", "r-seed6"]
    assert frame.groupby("study")["seed"].first().to_dict() == {"r-seed5": 5, "r-seed6": 6}
    assert frame.groupby("study").size().tolist() == [3, 3]


def test_a_study_of_another_proxy_or_strategy_is_refused(tmp_path):
    search(tmp_path, trials=2)

    class OtherFake(FakeProxy):
        name = "other"

    with pytest.raises(StudyMismatchError, match="proxy: 'fake' != 'other'"):
        search(tmp_path, proxy=OtherFake(), trials=3)
    with pytest.raises(StudyMismatchError, match="strategy: 'tpe' != 'random'"):
        search(tmp_path, strategy="random", trials=3)
    with pytest.raises(StudyMismatchError, match="seed: 0 != 1"):
        search(tmp_path, seed=1, trials=3)


@pytest.mark.parametrize("url, message", [
    ("foo://x", "unknown storage URL"), ("journal:", "names no file"), ("sqlite-file.db", "unknown storage URL"),
    ("postgresql://u@127.0.0.1:1/db", "cannot open storage|needs a database driver"),
])
def test_bad_storage_urls_are_one_line_errors(url, message):
    with pytest.raises(StorageError, match=message) as info:
        check_storage_url(url)
        open_storage(url)
    assert "\n" not in str(info.value)


def test_sqlite_busy_with_another_process_points_at_the_journal_storage(tmp_path, monkeypatch):
    from d2m_nas.search import storage

    def racing(*args, **kwargs):
        raise RuntimeError("(sqlite3.OperationalError) table studies already exists")

    monkeypatch.setattr(storage, "_create_rdb_storage", racing)
    with pytest.raises(StorageError, match="table studies already exists; several processes .* --storage journal:"):
        open_storage(f"sqlite:///{tmp_path / 'study.db'}")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the orphan is made with study.ask
def test_a_dead_workers_running_trial_is_failed_and_retried(tmp_path):
    search(tmp_path, trials=2)
    study = load(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = study.ask({name: optuna.distributions.CategoricalDistribution(values)
                        for name, values in SPACE.choices().items()})
    orphan.set_user_attr("worker", {"host": socket.gethostname(), "pid": dead.pid, "start": ""})
    proxy, _ = search(tmp_path, trials=4)
    study = load(tmp_path)
    states = {t.number: t.state for t in study.trials}
    assert states[orphan.number] == TrialState.FAIL
    frame = read_results(tmp_path / "run" / "results.csv")
    retry = frame[frame["retry_of"] == orphan.number]
    assert len(retry) == 1 and retry["arch"].iloc[0] == SPACE.decode(orphan.params)
    assert len(frame) == 4 and frame["trial"].is_unique and len(proxy.calls) == 2


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_silent_worker_on_another_machine_is_failed_by_the_heartbeat(tmp_path):
    search(tmp_path, trials=1, heartbeat=1)
    storage = open_storage(default_storage_url(tmp_path / "run"), heartbeat=1)
    study = optuna.load_study(study_name="s", storage=storage)
    orphan = study.ask({name: optuna.distributions.CategoricalDistribution(values)
                        for name, values in SPACE.choices().items()})
    orphan.set_user_attr("worker", {"host": "another-machine", "pid": 1, "start": ""})
    storage.record_heartbeat(orphan._trial_id)  # it was alive once, then went silent
    time.sleep(3.5)  # well past the grace period (2 heartbeats), with margin for a loaded machine
    search(tmp_path, trials=3, heartbeat=1)
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.trials[orphan.number].state == TrialState.FAIL
    frame = read_results(tmp_path / "run" / "results.csv")
    assert frame["retry_of"].dropna().astype(int).tolist() == [orphan.number] and len(frame) == 3


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_killed_before_it_was_labelled_does_not_cut_the_resumed_study_short(tmp_path):
    search(tmp_path, trials=2, heartbeat=1)
    orphan = load(tmp_path).ask({name: optuna.distributions.CategoricalDistribution(values)
                                 for name, values in SPACE.choices().items()})  # RUNNING, no worker
    proxy, summary = search(tmp_path, trials=3, heartbeat=1)  # waits out the orphan (2 heartbeats), retries it
    frame = read_results(tmp_path / "run" / "results.csv")
    assert len(frame) == 3 and summary["searches"][0]["studies"]["s"]["trials"] == 3
    assert frame["retry_of"].dropna().astype(int).tolist() == [orphan.number]
    assert frame["arch"].iloc[-1] == SPACE.decode(orphan.params) and len(proxy.calls) == 1


def test_an_enqueued_trial_outside_the_space_is_failed_and_skipped(tmp_path, capsys):
    search(tmp_path, trials=1)
    params = dict(load(tmp_path).trials[0].params)
    params[next(iter(params))] = "conv_9x9"
    load(tmp_path).enqueue_trial(params)
    search(tmp_path, trials=3)
    assert [t.state for t in load(tmp_path).trials][:2] == [TrialState.COMPLETE, TrialState.FAIL]
    assert len(read_results(tmp_path / "run" / "results.csv")) == 3  # the budget is met by valid trials
    assert "trial 1: not an architecture of nasbench201 ('conv_9x9' not in" in capsys.readouterr().out


def test_a_trial_stopped_by_ctrl_c_is_retried_on_resume(tmp_path):
    class Interrupted(FakeProxy):
        def score(self, arch, context):
            if len(self.calls) == 2:
                self.calls.append(arch)
                raise KeyboardInterrupt
            return super().score(arch, context)

    stopped = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        search(tmp_path, proxy=stopped, trials=4)
    proxy, _ = search(tmp_path, trials=4)
    frame = read_results(tmp_path / "run" / "results.csv")
    study = load(tmp_path)
    assert study.trials[2].state == TrialState.FAIL and len(frame) == 4
    retry = frame[frame["retry_of"] == 2]
    assert len(retry) == 1 and retry["arch"].iloc[0] == stopped.calls[2]  # the interrupted architecture, again


WORKER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from test_search_optuna import FakeProxy, SPACE, fake_truths
    from d2m_nas.proxies.base import ProxyContext
    from d2m_nas.search import SearchConfig, run_search

    run_dir, storage, study, trials, delay, log, rendezvous = (sys.argv[1:8] + [""])[:7]
    config = SearchConfig(trials=int(trials), study=study, storage=storage, strategy="random", progress=False,
                          heartbeat=60)
    run_search(FakeProxy(float(delay), log, (rendezvous, 2) if rendezvous else None), ProxyContext(space=SPACE, dataset=None), config, run_dir,
               truths=fake_truths(), truth_column="fake_acc")
""")


def start_worker(tmp_path, run_dir, storage, study, trials, delay, log, rendezvous="") -> subprocess.Popen:
    script = tmp_path / "worker.py"
    if not script.exists():
        script.write_text(WORKER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(run_dir), storage, study, str(trials), str(delay),
                             str(log), str(rendezvous)], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def finish(process: subprocess.Popen) -> None:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-2000:]


def check_every_trial_recorded_once(study, frame, trials, workers):
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert trials <= len(complete) <= trials + workers - 1  # concurrent workers may overshoot by one each
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    assert frame["trial"].is_unique
    assert sorted(frame["trial"]) == sorted(t.number for t in complete)
    by_trial = frame.set_index("trial")
    for trial in complete:
        assert by_trial.loc[trial.number, "arch"] == SPACE.decode(trial.params)
        assert by_trial.loc[trial.number, "score"] == pytest.approx(trial.value)


def two_workers(tmp_path, storage, study_name, trials=8):
    run_dir, log = tmp_path / "run", tmp_path / "proxy.log"
    rendezvous = tmp_path / "started"  # each worker's first trial waits for the other's
    workers = [start_worker(tmp_path, run_dir, storage, study_name, trials, 0.1, log, rendezvous) for _ in range(2)]
    for worker in workers:
        finish(worker)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    frame = read_results(run_dir / "results.csv")
    check_every_trial_recorded_once(study, frame, trials, workers=2)
    assert frame["worker"].nunique() == 2  # both processes did work
    return frame


def test_a_resumed_study_proposes_the_same_architectures_whichever_process_resumes_it(tmp_path):
    import shutil

    def worker(copy: str, trials: int) -> list[str]:
        run_dir = tmp_path / copy / "run"
        finish(start_worker(tmp_path, run_dir, f"sqlite:///{run_dir / 'study.db'}", "s", trials, 0, tmp_path / "log"))
        return read_results(run_dir / "results.csv")["arch"].tolist()

    worker("a", 3)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    resumed = [worker("a", 6), worker("b", 6)]  # two processes, two pids, one study history
    assert resumed[0] == resumed[1] and len(resumed[0]) == 6


def test_two_processes_share_a_journal_file_study(tmp_path):
    two_workers(tmp_path, f"journal:{tmp_path / 'study.log'}", "shared")


def test_two_processes_share_a_postgresql_study(tmp_path):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (e.g. to the URL that scripts/postgres.sh prints)")
    two_workers(tmp_path, url, f"test-{uuid.uuid4().hex[:12]}")


def test_kill_minus_nine_mid_trial_then_the_same_command_resumes(tmp_path):
    run_dir, log, storage = tmp_path / "run", tmp_path / "proxy.log", default_storage_url(tmp_path / "run")
    victim = start_worker(tmp_path, run_dir, storage, "k", 5, 0.5, log)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until two trials are done and a third is being scored
        lines = log.read_text().splitlines() if log.exists() else []
        done = [line for line in lines if line.startswith("done")]
        if len(done) >= 2 and len(lines) - len(done) > len(done):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the worker never reached its third trial: {victim.communicate()[1][-2000:]}")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = log.read_text().splitlines()
    finish(start_worker(tmp_path, run_dir, storage, "k", 5, 0.0, log))

    study = optuna.load_study(study_name="k", storage=open_storage(storage))
    frame = read_results(run_dir / "results.csv")
    check_every_trial_recorded_once(study, frame, 5, workers=1)
    assert len(frame) == 5
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1  # the trial that was running when the worker died
    assert frame["retry_of"].dropna().astype(int).tolist() == [failed[0].number]
    # finished evaluations were not redone: every architecture finished once in the log
    finished = [line.split()[2] for line in log.read_text().splitlines() if line.startswith("done")]
    assert len(finished) == len(set(finished))
    done_before = {line.split()[2] for line in before if line.startswith("done")}
    started_after = [line.split()[2] for line in log.read_text().splitlines()[len(before):] if line.startswith("start")]
    assert not done_before & set(started_after)
    # the cache and the storage agree on every score
    config = proxy_config(FakeProxy(), ProxyContext(space=SPACE, dataset=None))
    with ScoreCache(run_dir / "cache.sqlite") as cache:
        assert {e["arch"] for e in cache.entries(config)} == set(frame["arch"])
        for arch, score in zip(frame["arch"], frame["score"]):
            assert cache.get(SPACE.name, arch, config, 0).score == pytest.approx(score)
