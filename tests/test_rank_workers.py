"""`rank --workers N` and `rank --storage URL`: work claimed through Optuna storage, each
(architecture, proxy seed) scored once, a killed worker's item retried, the report identical to a
single process's (sqlite here; PostgreSQL when the test command started a server)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from d2m_nas.cli import main
from d2m_nas.proxies.base import ProxyScore
from d2m_nas.rank_work import ITEM_ATTR, open_work
from d2m_nas.search.optuna_backend import IDENTITY_ATTR
from tests.test_search_optuna import POSTGRES_ENV

REPO = Path(__file__).resolve().parents[1]
ARCHS = [f"a{i}" for i in range(8)]  # the work study does not parse architectures

WORKER = textwrap.dedent("""
    import os, signal, sys, time
    from d2m_nas.proxies.base import ProxyScore
    from d2m_nas.rank_work import open_work, work
    url, name, log, kill_at, archs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split(",")
    taken = []

    def score(arch, seed):
        taken.append(arch)
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {arch} {seed}\\n")
        if len(taken) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-item, before its score exists
        time.sleep(0.3)
        return {"fake": ProxyScore(float(len(arch)) + seed, 0.3, {"pid": os.getpid()})}

    study = open_work(url, name, archs, [0, 1], heartbeat=2)
    started = os.path.join(os.path.dirname(log), "started")  # both begin together, however slow a start-up
    os.makedirs(started, exist_ok=True)
    open(os.path.join(started, str(os.getpid())), "w").close()
    deadline = time.monotonic() + 120
    while len(os.listdir(started)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    work(study, score, heartbeat=2, poll=0.1)
""")


def start(url: str, name: str, log: Path, kill_at: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", WORKER, url, name, str(log), str(kill_at), ",".join(ARCHS)],
                            env=env, stderr=subprocess.PIPE, text=True)


def check_claims_after_a_kill(url: str, log: Path) -> None:
    name = f"rank-test-{uuid.uuid4().hex[:8]}"
    open_work(url, name, ARCHS, [0, 1])  # enqueued before the workers start, as the command does
    victim, survivor = start(url, name, log, kill_at=2), start(url, name, log)
    assert victim.wait(timeout=120) == -signal.SIGKILL, victim.stderr.read()[-2000:]  # why it ended otherwise
    assert survivor.wait(timeout=120) == 0, survivor.stderr.read()[-2000:]
    study = optuna.load_study(study_name=name, storage=url)
    complete = [tuple(t.user_attrs[ITEM_ATTR]) for t in study.get_trials(states=(TrialState.COMPLETE,))]
    items = [(arch, seed) for arch in ARCHS for seed in (0, 1)]
    assert sorted(complete) == sorted(items)  # every item finished, none twice
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert len(failed) == 1 and failed[0].user_attrs["worker"]["pid"] == victim.pid
    started = Counter(tuple(line.split()[1:]) for line in log.read_text().splitlines())
    killed_item = (failed[0].user_attrs[ITEM_ATTR][0], str(failed[0].user_attrs[ITEM_ATTR][1]))
    assert started[killed_item] == 2  # the dead worker's item was retried by the survivor ...
    assert all(count == 1 for item, count in started.items() if item != killed_item)  # ... and nothing else redone


def test_a_killed_workers_item_is_retried_and_every_item_scored_once(tmp_path):
    check_claims_after_a_kill(f"sqlite:///{tmp_path / 'work.db'}", tmp_path / "log")


def test_the_same_on_postgresql(tmp_path):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (e.g. to the URL that scripts/postgres.sh prints)")
    check_claims_after_a_kill(url, tmp_path / "log")


def rank_argv(table: Path, out: Path, *extra: str) -> list[str]:
    return ["rank", "--sample", "4", "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table),
            "--dataset", "fake", "--val-per-class", "10", "--channels", "4", "--cells", "1", "--device", "cpu",
            "--bootstrap", "20", "--steps", "3", "--ipc", "4", "--proxy", "random-subset,params,zc-vote",
            "--proxy-seeds", "2", "--threads", "1", "--out", str(out), *extra]


def scores(out: Path) -> pd.DataFrame:
    frame = pd.read_csv(out / "results.csv").sort_values(["arch", "proxy", "seed"]).reset_index(drop=True)
    return frame[["arch", "proxy", "seed", "score", "tse_e"]]


def test_rank_with_two_workers_reports_what_one_process_does(tmp_path, table, capsys):
    assert main(rank_argv(table, tmp_path / "one")) == 0
    assert main(rank_argv(table, tmp_path / "two", "--workers", "2")) == 0
    pd.testing.assert_frame_equal(scores(tmp_path / "one"), scores(tmp_path / "two"))
    storage = f"sqlite:///{tmp_path / 'two' / 'work.db'}"
    (name,) = optuna.get_all_study_names(storage)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 4 * 2 == len({tuple(t.user_attrs[ITEM_ATTR]) for t in trials})
    # rerun: the work is done, nothing is scored again, the report is the same
    before = (tmp_path / "two" / "summary.md").read_text()
    assert main(rank_argv(table, tmp_path / "two", "--workers", "2")) == 0
    assert (tmp_path / "two" / "summary.md").read_text() == before


def reported(out: Path) -> pd.DataFrame:
    """A report's rows (every score rule as its own proxy), in one order, without the run's label."""
    frame = pd.read_csv(out / "results.csv").drop(columns="run")
    return frame.sort_values(["arch", "proxy", "seed"]).reset_index(drop=True)


def test_report_reads_a_shared_rank_study_whole_from_its_storage(tmp_path, table):
    run, storage = tmp_path / "two", f"sqlite:///{tmp_path / 'two' / 'work.db'}"
    assert main(rank_argv(table, run, "--workers", "2")) == 0
    common = ["--bootstrap", "20", "--ground-truth-file", str(table)]
    assert main(["report", "--storage", storage, "--out", str(tmp_path / "from-storage"), *common]) == 0
    assert main(["report", str(run), "--out", str(tmp_path / "from-dir"), *common]) == 0
    from_storage, from_dir = reported(tmp_path / "from-storage"), reported(tmp_path / "from-dir")
    assert set(from_storage["proxy"]) >= {"zc-vote", "random-subset@tse_e", "params"}  # ensembles too
    pd.testing.assert_frame_equal(from_storage, from_dir)
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("from-storage", "from-dir")]
    rankings = [{(r["proxy"], r["correlation"]["spearman"]["value"]) for section in s["rankings"]
                 for r in section["rankings"]} for s in summaries]
    assert rankings[0] == rankings[1] and len(rankings[0]) == 5 + 1 + 3 + 1  # 5 rules, params, 3 zc, the vote
    assert "logical CPUs, 1 thread" in summaries[0]["inputs"][0]["hardware"]


def test_a_shared_rank_writes_each_item_as_it_finishes_so_a_stopped_run_is_readable(tmp_path, table, monkeypatch):
    import d2m_nas.ranking

    real, calls = d2m_nas.ranking.score_cached, []

    def stopped_at_the_fourth_item(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return real(*args, **kwargs)

    out, storage = tmp_path / "shared", ["--storage", f"sqlite:///{tmp_path / 'work.db'}"]
    monkeypatch.setattr(d2m_nas.ranking, "score_cached", stopped_at_the_fourth_item)
    assert main(rank_argv(table, out, *storage)) == 130
    partial = pd.read_csv(out / "results.csv")
    assert len(partial) == 3 * 5  # three items' rows (random-subset, params and the vote's three), no ensemble
    assert main(["report", str(out), "--out", str(tmp_path / "report"), "--bootstrap", "20"]) == 0  # readable now
    assert main(["report", "--storage", storage[1], "--out", str(tmp_path / "stored"), "--bootstrap", "20"]) == 0
    stored, written = (pd.read_csv(tmp_path / d / "results.csv") for d in ("stored", "report"))
    assert len(stored) == len(written)
    resumed = []

    def counted(*args, **kwargs):
        resumed.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(d2m_nas.ranking, "score_cached", counted)
    assert main(rank_argv(table, out, *storage)) == 0
    assert len(resumed) == 4 * 2 - 3  # resumed: the items not finished before Ctrl-C (the interrupted one too)
    assert main(rank_argv(table, tmp_path / "one")) == 0
    pd.testing.assert_frame_equal(scores(tmp_path / "one"), scores(out))


def test_two_machines_on_one_postgresql_rank_study_each_write_the_whole_report(tmp_path, table):
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (e.g. to the URL that scripts/postgres.sh prints)")
    seed = str(uuid.uuid4().int % 10**6)  # a study of its own: the server outlives test runs
    assert main(rank_argv(table, tmp_path / "alone", "--seed", seed)) == 0
    before = set(optuna.get_all_study_names(url))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    # "machines": separate run directories and caches; the storage is all they share
    command = [sys.executable, "-m", "d2m_nas"]
    storage = ["--storage", url, "--seed", seed, "--heartbeat", "5"]
    runs = [subprocess.Popen(command + rank_argv(table, tmp_path / f"m{i}", *storage), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for run in runs:
        assert run.wait(timeout=300) == 0, run.stderr.read()[-2000:]
    for i in range(2):
        pd.testing.assert_frame_equal(scores(tmp_path / "alone"), scores(tmp_path / f"m{i}"))
    # a third machine with neither run directory reads the whole study from the database
    (study,) = [name for name in optuna.get_all_study_names(url) if name not in before and name.startswith("rank-")]
    common = ["--bootstrap", "20", "--ground-truth-file", str(table)]
    assert main(["report", "--storage", url, "--study", study, "--out", str(tmp_path / "third"), *common]) == 0
    assert main(["report", str(tmp_path / "alone"), "--out", str(tmp_path / "alone-report"), *common]) == 0
    values = ["arch", "proxy", "seed", "score", "truth", "tse_e"]  # timings differ between runs
    pd.testing.assert_frame_equal(reported(tmp_path / "third")[values], reported(tmp_path / "alone-report")[values])


@pytest.mark.parametrize("extra, fragment", [
    (["--storage", "ftp://x"], "unknown storage URL"),
    (["--workers", "0"], "--workers"),
])
def test_bad_worker_options_are_one_line_errors(tmp_path, table, capsys, extra, fragment):
    assert main(rank_argv(table, tmp_path / "r", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, fragment", [
    ([], "give run directories, or --storage"),
    (["--storage", "sqlite:///{tmp}/none.db", "--out", "{tmp}/r"], "does not exist"),
    (["--storage", "journal:{tmp}/none.log", "--out", "{tmp}/r"], "does not exist"),
    (["--storage", "ftp://x", "--out", "{tmp}/r"], "unknown storage URL"),
    (["--storage", "sqlite:///{tmp}/work.db"], "needs --out"),
    (["--storage", "sqlite:///{tmp}/work.db", "--study", "nope", "--out", "{tmp}/r"], "no rank or search study 'nope'; it holds w"),
    (["--storage", "sqlite:///{tmp}/empty.db", "--out", "{tmp}/r"], "holds no study of d2m-nas rank or search"),
    (["--storage", "sqlite:///{tmp}/two.db", "--out", "{tmp}/r"], "holds 2 rank studies; name one with --study (x, y)"),
    (["--storage", "sqlite:///{tmp}/mixed.db", "--out", "{tmp}/r"],
     "holds rank studies (r) and search studies (s); name one with --study"),
    (["--storage", "sqlite:///{tmp}/mixed.db", "--study", "s", "--out", "{tmp}/r"],
     "search study s in sqlite:///{tmp}/mixed.db was made by an older d2m-nas"),
    (["--study", "w", "--out", "{tmp}/r"], "give --storage too"),
])
def test_bad_storage_reports_are_one_line_errors_with_nothing_written(tmp_path, capsys, argv, fragment):
    open_work(f"sqlite:///{tmp_path / 'work.db'}", "w", ARCHS[:2], [0])  # a rank study, nothing finished
    optuna.create_study(storage=f"sqlite:///{tmp_path / 'empty.db'}", study_name="a-search")
    for name in ("x", "y"):
        open_work(f"sqlite:///{tmp_path / 'two.db'}", name, ARCHS[:1], [0])
    open_work(f"sqlite:///{tmp_path / 'mixed.db'}", "r", ARCHS[:1], [0])
    search = optuna.create_study(storage=f"sqlite:///{tmp_path / 'mixed.db'}", study_name="s")
    search.set_user_attr(IDENTITY_ATTR, {"space": "nasbench201", "seed": 0})  # as before the rows' labels were kept

    def files():  # SQLite's -wal/-shm companions come and go with connections
        return {p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))}

    before = files()
    assert main(["report", *(a.format(tmp=tmp_path) for a in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment.format(tmp=tmp_path) in err and "\n" not in err
    assert files() == before  # no database made, no report written


def test_a_study_scored_before_rows_were_stored_is_refused_in_one_line(tmp_path, capsys):
    from d2m_nas.rank_work import work

    url = f"sqlite:///{tmp_path / 'work.db'}"
    work(open_work(url, "old", ARCHS[:2], [0]), lambda arch, seed: {"fake": ProxyScore(1.0, 0.1, {})})  # no rows
    assert main(["report", "--storage", url, "--out", str(tmp_path / "r")]) == 2
    assert "2 finished items of study old" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_ctrl_c_free_claims_are_requeued(tmp_path):
    """A worker stopped by Ctrl-C leaves its item waiting, not lost (the search's rule)."""
    from d2m_nas.rank_work import work

    url = f"sqlite:///{tmp_path / 'work.db'}"
    study = open_work(url, "w", ARCHS[:2], [0])

    def interrupted(arch, seed):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        work(study, interrupted)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert sorted(tuple(t.user_attrs[ITEM_ATTR]) for t in waiting) == [("a0", 0), ("a1", 0)]


def test_a_creator_killed_while_enqueueing_is_taken_over(tmp_path):
    url = f"sqlite:///{tmp_path / 'work.db'}"
    half = optuna.create_study(storage=url, study_name="half")  # as a creator killed after 3 items
    for arch in ARCHS[:3]:
        half.enqueue_trial({}, user_attrs={ITEM_ATTR: [arch, 0]})
    study = open_work(url, "half", ARCHS, [0], stalled_after=0.5)
    items = sorted(tuple(t.user_attrs[ITEM_ATTR]) for t in study.get_trials(states=(TrialState.WAITING,)))
    assert items == [(arch, 0) for arch in sorted(ARCHS)]  # every item once: the rest added, none twice


def test_training_work_is_taken_biggest_network_first():
    from d2m_nas.proxies import ProxyContext, create_proxy
    from d2m_nas.proxies.zero_cost import score_zero_cost
    from d2m_nas.rank_work import longest_first
    from search_spaces.registry import create_space

    space = create_space("nasbench201")
    archs = space.sample(6, 0)
    context = ProxyContext(space=space, dataset=None, model_options={"channels": 16, "cells_per_stage": 5})
    trained = create_proxy("random-subset[channels=4,cells=1]")
    order = longest_first(archs, [trained], context)
    small = context.with_model_options({"channels": 4, "cells_per_stage": 1})  # the proxy's own size counts
    flops = [score_zero_cost(a, ["flops"], small)["flops"].score for a in order]
    assert sorted(order) == sorted(archs) and flops == sorted(flops, reverse=True) and order != archs
    assert longest_first(archs, [], context) == archs  # zero-cost work: the sample's order
