"""The score cache: hit, miss, what the key distinguishes, several writers, resume after a kill,
claims (a score being computed elsewhere is waited for; a dead claimant's claim is taken over)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

from d2m_nas.proxies.base import Proxy, ProxyContext, ProxyScore
from d2m_nas.score_cache import ScoreCache, config_key, proxy_config
from search_spaces.registry import create_space

SPACE = create_space("nasbench201")
ARCHS = SPACE.sample(5, seed=3)
REPO = Path(__file__).resolve().parents[1]


class CountingProxy(Proxy):
    """A deterministic fake: the score is a hash of (arch, seed, scale); counts its calls."""

    name = "counting"
    needs_data = False
    costly = True  # claimed while computed, as a training proxy is

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self.calls: list[str] = []

    def config(self) -> dict:
        return {"scale": self.scale}

    def score(self, arch: str, context: ProxyContext) -> ProxyScore:
        self.calls.append(arch)
        digest = hashlib.sha256(f"{arch}|{context.seed}".encode()).hexdigest()
        return ProxyScore(self.scale * int(digest[:8], 16) / 2**32, 0.5, {"note": "fake"})


def context(seed: int = 0, **options) -> ProxyContext:
    return ProxyContext(space=SPACE, dataset=None, seed=seed, model_options=options or {"channels": 4})


def test_miss_then_hit_returns_the_stored_score(tmp_path):
    proxy = CountingProxy()
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        first = cache.score(proxy, ARCHS[0], context())
        second = cache.score(proxy, ARCHS[0], context())
        assert (first.hit, second.hit) == (False, True)
        assert second.score.score == first.score.score and second.score.seconds == 0.5
        assert second.score.extra == {"note": "fake"}
        assert proxy.calls == [ARCHS[0]]
        assert len(cache) == 1
    with ScoreCache(tmp_path / "cache.sqlite") as reopened:  # persists across processes and runs
        assert reopened.score(proxy, ARCHS[0], context()).hit
        assert proxy.calls == [ARCHS[0]]


def test_key_distinguishes_arch_seed_settings_and_model_options(tmp_path):
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        cache.score(CountingProxy(), ARCHS[0], context())
        assert not cache.score(CountingProxy(), ARCHS[1], context()).hit
        assert not cache.score(CountingProxy(), ARCHS[0], context(seed=1)).hit
        assert not cache.score(CountingProxy(scale=2.0), ARCHS[0], context()).hit
        assert not cache.score(CountingProxy(), ARCHS[0], context(channels=8)).hit
        assert len(cache) == 5
        # proxies that read no data do not depend on the dataset or batch size
        a = proxy_config(CountingProxy(), context())
        b = proxy_config(CountingProxy(), ProxyContext(space=SPACE, dataset=None, batch_size=7,
                                                       model_options={"channels": 4}))
        assert config_key(a) == config_key(b)


def test_first_writer_wins_between_two_connections(tmp_path):
    one, two = ScoreCache(tmp_path / "c.sqlite"), ScoreCache(tmp_path / "c.sqlite")
    config = proxy_config(CountingProxy(), context())
    stored = one.put(SPACE.name, ARCHS[0], config, 0, ProxyScore(1.0, 0.1))
    again = two.put(SPACE.name, ARCHS[0], config, 0, ProxyScore(2.0, 0.2))
    assert stored.score == again.score == 1.0
    assert len(one) == len(two) == 1
    one.close(), two.close()


def test_nan_scores_round_trip(tmp_path):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        config = proxy_config(CountingProxy(), context())
        cache.put(SPACE.name, ARCHS[0], config, 0, ProxyScore(float("nan"), 0.1))
        assert torch.isnan(torch.tensor(cache.get(SPACE.name, ARCHS[0], config, 0).score))


def test_a_proxy_whose_settings_cannot_be_keyed_is_refused():
    class Opaque(Proxy):
        name = "opaque"
        needs_data = False

        def __init__(self) -> None:
            self.weights = torch.zeros(3)

        def score(self, arch, context):
            return ProxyScore(0.0, 0.0)

    with pytest.raises(TypeError, match="config\\(\\)"):
        proxy_config(Opaque(), context())


def test_a_corrupt_cache_file_is_reported(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="not a usable SQLite file"):
        ScoreCache(path)



def test_an_optuna_study_database_is_refused_untouched(tmp_path):
    import optuna

    path = tmp_path / "study.db"
    optuna.create_study(storage=f"sqlite:///{path}", study_name="s")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="is not a d2m-nas score cache.*studies"):
        ScoreCache(path)
    assert path.read_bytes() == before  # no tables added to the study


KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    from test_score_cache import ARCHS, CountingProxy, context
    from d2m_nas.score_cache import ScoreCache

    class KillOnFourth(CountingProxy):
        def score(self, arch, ctx):
            if len(self.calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)  # dies mid-evaluation, as a killed worker would
            return super().score(arch, ctx)

    cache, proxy = ScoreCache(sys.argv[1]), KillOnFourth()
    for arch in ARCHS:
        cache.score(proxy, arch, context())
""")


def test_resume_after_a_kill_keeps_finished_scores_and_takes_over_the_claim(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(KILLED_WRITER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "cache.sqlite")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    proxy = CountingProxy()
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        assert len(cache) == 3  # the three finished scores survived, nothing half-written
        hits = [cache.score(proxy, arch, context()).hit for arch in ARCHS]
    assert hits == [True, True, True, False, False]
    assert proxy.calls == ARCHS[3:]  # the killed writer's claim on ARCHS[3] was taken over ...
    assert _claims(tmp_path / "cache.sqlite") == []  # ... and released


def _claims(path: Path) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT arch, worker FROM claims").fetchall()


SLOW_WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from pathlib import Path
    from test_score_cache import ARCHS, CountingProxy, context
    from d2m_nas.score_cache import ScoreCache

    class Slow(CountingProxy):
        def score(self, arch, ctx):
            Path(sys.argv[2]).touch()  # computing now: the test asks for the same score
            time.sleep(3)
            return super().score(arch, ctx)

    ScoreCache(sys.argv[1]).score(Slow(), ARCHS[0], context())
""")


def test_a_score_another_process_is_computing_is_waited_for_not_computed_again(tmp_path):
    script, started = tmp_path / "slow.py", tmp_path / "started"
    script.write_text(SLOW_WRITER.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    writer = subprocess.Popen([sys.executable, str(script), str(tmp_path / "c.sqlite"), str(started)], env=env,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not started.exists():
        assert writer.poll() is None and time.time() < deadline, writer.stderr.read()[-2000:]
        time.sleep(0.05)
    proxy = CountingProxy()
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        waited = cache.score(proxy, ARCHS[0], context())
    assert writer.wait(timeout=60) == 0
    assert waited.hit and proxy.calls == []  # the other process's score, not a second computation
    assert waited.score == CountingProxy().score(ARCHS[0], context())


def _foreign_claim(path: Path, arch: str, beat: float) -> None:
    key = config_key(proxy_config(CountingProxy(), context()))
    worker = json.dumps({"host": "another-machine", "pid": 1, "start": ""})
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)", (SPACE.name, arch, key, 0, worker, beat))


def test_another_machines_claim_is_waited_for_while_renewed_and_taken_over_when_stale(tmp_path):
    path = tmp_path / "c.sqlite"
    with ScoreCache(path) as cache:
        cache.stale_after, cache.poll = 30.0, 0.05
        _foreign_claim(path, ARCHS[0], time.time())  # fresh: that machine is computing it
        finisher = threading.Timer(0.5, lambda: ScoreCache(path).put(  # ... and stores it half a second later
            SPACE.name, ARCHS[0], proxy_config(CountingProxy(), context()), 0, ProxyScore(0.25, 9.0)))
        finisher.start()
        proxy = CountingProxy()
        waited = cache.score(proxy, ARCHS[0], context())
        finisher.join()
        assert waited.hit and waited.score.score == 0.25 and proxy.calls == []

        cache.stale_after = 0.3
        _foreign_claim(path, ARCHS[1], time.time())  # never renewed: that machine is gone
        started = time.monotonic()
        taken = cache.score(proxy, ARCHS[1], context())
        assert not taken.hit and proxy.calls == [ARCHS[1]]
        assert time.monotonic() - started >= 0.3  # taken over only once this process saw it silent that long
    assert [arch for arch, _ in _claims(path)] == [ARCHS[0]]  # the finisher stored without claiming


@pytest.mark.parametrize("skew", [-3600.0, 3600.0])
def test_claims_of_a_machine_whose_clock_differs_are_judged_by_their_renewals(tmp_path, skew):
    """A claimant an hour behind is not taken over while it renews; one an hour ahead is taken
    over once it stops: its beats are compared with each other, never with this machine's time."""
    path = tmp_path / "c.sqlite"
    ScoreCache(path).close()  # the tables
    _foreign_claim(path, ARCHS[0], time.time() + skew)
    stop = threading.Event()

    def renew() -> None:  # that machine's renewer, on its own clock, every 0.1 s for 1 s
        for _ in range(10):
            if stop.wait(0.1):
                return
            with contextlib.closing(sqlite3.connect(path)) as db, db:
                db.execute("UPDATE claims SET beat = ? WHERE arch = ?", (time.time() + skew, ARCHS[0]))

    renewer = threading.Thread(target=renew)
    with ScoreCache(path) as cache:
        cache.stale_after, cache.poll = 1.0, 0.05  # ten times the renewal interval: a busy CI host may lag
        renewer.start()
        started = time.monotonic()
        proxy = CountingProxy()
        taken = cache.score(proxy, ARCHS[0], context())
        waited = time.monotonic() - started
        stop.set()
        renewer.join()
    assert not taken.hit and proxy.calls == [ARCHS[0]]
    assert 1.0 + 1.0 <= waited < 20  # waited while the claim was renewed (1 s), then its silence (1 s)


def test_an_unknown_cache_url_is_refused():
    from d2m_nas.score_cache import CacheError

    with pytest.raises(CacheError, match="unknown score cache 'redis://h/0'.*postgresql://"):
        ScoreCache("redis://h/0")
