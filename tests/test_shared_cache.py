"""The score cache on PostgreSQL, shared by rank and search workers on one database: each
architecture trained once across all of them, a SIGKILLed worker's claim and item taken over,
the report identical to a single process's. Skips without a server (the test command starts one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.proxies.base import ProxyScore
from d2m_nas.score_cache import ScoreCache
from d2m_nas.search import read_results
from tests.test_search_optuna import POSTGRES_ENV

REPO = Path(__file__).resolve().parents[1]

# Runs a d2m-nas command with every training logged ("start"/"done" PID ARCH SEED); a delay keeps
# each training running long enough for the test to kill the process in the middle of one.
LOGGED = textwrap.dedent("""
    import os, sys, time
    import d2m_nas.proxies.training as training
    log, delay = sys.argv[1], float(sys.argv[2])
    original = training.TrainingProxy.score

    def logged(self, arch, context, *args, **kwargs):
        with open(log, "a") as handle:
            handle.write(f"start {os.getpid()} {arch} {context.seed}\\n")
        time.sleep(delay)
        score = original(self, arch, context, *args, **kwargs)
        with open(log, "a") as handle:
            handle.write(f"done {os.getpid()} {arch} {context.seed}\\n")
        return score

    training.TrainingProxy.score = logged
    from d2m_nas.cli import main
    sys.exit(main(sys.argv[3:]))
""")


@pytest.fixture
def database():
    """A new, empty PostgreSQL database on the test server (dropped afterwards)."""
    import sqlalchemy

    from d2m_nas.databases import sqlalchemy_url

    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"no PostgreSQL server: set {POSTGRES_ENV} (e.g. to the URL that scripts/postgres.sh prints)")
    name = f"cache_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(sqlalchemy_url(url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    yield url.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_a_postgresql_cache_keeps_the_first_score_for_every_connection(database):
    config = {"proxy": "fake", "settings": {}}
    one, two = ScoreCache(database), ScoreCache(database)
    stored = one.put("nasbench201", "a", config, 0, ProxyScore(1.0, 0.1, {"k": [1]}), "cpu")
    again = two.put("nasbench201", "a", config, 0, ProxyScore(2.0, 0.2))
    assert stored == again == ProxyScore(1.0, 0.1, {"k": [1]})
    assert two.get("nasbench201", "a", config, 0) == stored and two.get("nasbench201", "a", config, 1) is None
    assert len(one) == len(two) == 1 and two.entries()[0]["device"] == "cpu"
    one.close(), two.close()


def test_an_unreachable_cache_is_a_one_line_error_before_anything_is_written(tmp_path, table, capsys):
    out = tmp_path / "run"
    argv = ["rank", "--proxy", "params", "--sample", "3", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--cache", "postgresql://nobody@127.0.0.1:9/none", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot open score cache postgresql://nobody@127.0.0.1:9/none" in err and "\n" not in err
    assert not out.exists()


def _archs(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line]


def _scores(out: Path, archs: list[str] | None = None) -> pd.DataFrame:
    frame = pd.read_csv(out / "results.csv")
    if archs is not None:
        frame = frame[frame["arch"].isin(archs)]
    frame = frame.sort_values(["arch", "proxy", "seed"]).reset_index(drop=True)
    return frame[["arch", "proxy", "seed", "score", "tse_e"]]


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_rank_and_search_workers_on_one_database_train_each_architecture_once(tmp_path, table, database):
    common = ["--proxy", "random-subset", "--dataset", "fake", "--val-per-class", "10", "--ipc", "4", "--steps", "3",
              "--proxy-batch-size", "8", "--channels", "2", "--cells", "1", "--seed", "7", "--threads", "1",
              "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--device", "cpu"]
    search = ["search", "--strategy", "random", "--trials", "4", "--study", "shared", *common]
    # the rank's sample is what the search proposes alone, so both studies want the same cells at once
    assert main([*search, "--out", str(tmp_path / "alone-search")]) == 0
    archs = tmp_path / "archs.txt"
    archs.write_text("\n".join(dict.fromkeys(read_results(tmp_path / "alone-search" / "results.csv")["arch"])) + "\n")
    rank = ["rank", "--archs", str(archs), "--bootstrap", "20", *common]

    log, script = tmp_path / "trainings.log", tmp_path / "logged.py"
    script.write_text(LOGGED)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def launch(argv: list[str], delay: float = 0.0) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(log), str(delay), *argv, "--storage", database],
                                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def lines() -> list[list[str]]:
        return [line.split() for line in log.read_text().splitlines()] if log.exists() else []

    victim = launch([*rank, "--out", str(tmp_path / "r0")], delay=60)
    _wait_for(lambda: any(line[:2] == ["start", str(victim.pid)] for line in lines()), 120, "the victim's training")
    others = [launch([*rank, "--out", str(tmp_path / "r1")])] + [
        launch([*search, "--out", str(tmp_path / "search")]) for _ in range(2)]
    victim.send_signal(signal.SIGKILL)  # mid-training: its rank item and its cache claim are left behind
    assert victim.wait(timeout=60) == -signal.SIGKILL
    for process in others:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-2000:]

    # every architecture trained once by the four processes; the killed one's started twice, finished once
    done = Counter(tuple(line[2:]) for line in lines() if line[0] == "done")
    started = Counter(tuple(line[2:]) for line in lines() if line[0] == "start")
    killed = next(tuple(line[2:]) for line in lines() if line[:2] == ["start", str(victim.pid)])
    searched = read_results(tmp_path / "search" / "results.csv")
    every = set(_archs(archs)) | set(searched["arch"])
    assert set(done) == {(arch, "7") for arch in every} and set(done.values()) == {1}
    assert started[killed] == 2 and all(count == 1 for item, count in started.items() if item != killed)

    # the surviving rank's report is a single process's, and the search read the same scores
    union = tmp_path / "union.txt"
    union.write_text("\n".join(sorted(every)) + "\n")
    alone = ["rank", *common, "--bootstrap", "20", "--cache", str(tmp_path / "alone.sqlite")]
    assert main([*alone, "--archs", str(archs), "--out", str(tmp_path / "alone-rank")]) == 0
    pd.testing.assert_frame_equal(_scores(tmp_path / "alone-rank"), _scores(tmp_path / "r1"))
    assert main([*alone, "--archs", str(union), "--out", str(tmp_path / "alone-union")]) == 0
    truth = _scores(tmp_path / "alone-union").set_index("arch")["score"]
    assert searched["score"].to_numpy() == pytest.approx(truth.loc[searched["arch"]].to_numpy())
