"""A proxy's own network size (`synflow[channels=16,cells=5]`): scores at that size, a cache key
by the size in effect (old keys stay valid), one run mixing sizes, and a vote as a warm start."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from d2m_nas.cli import main
from d2m_nas.errors import UserError
from d2m_nas.proxies import ProxyContext, create_proxy, score_architecture
from d2m_nas.proxies.ensemble import rank_average
from d2m_nas.score_cache import config_key, proxy_config
from d2m_nas.search import SearchConfig, read_results, run_search
from search_spaces.registry import create_space

SPACE = create_space("nasbench201")
ARCHS = SPACE.sample(3, 0)
SMALL = {"channels": 4, "cells_per_stage": 1}
LARGER = {"channels": 8, "cells_per_stage": 1}


def context(options):
    return ProxyContext(space=SPACE, dataset=None, model_options=dict(options))


def test_a_proxy_scores_at_its_own_size_and_is_keyed_by_the_size_in_effect():
    own = create_proxy("synflow[channels=8, cells=1]")
    plain = create_proxy("synflow")
    assert own.name == "synflow[cells=1,channels=8]" and own.registered_name == "synflow"
    small, larger = context(SMALL), context(LARGER)
    # the key a plain proxy had before per-proxy sizes existed, unchanged
    assert proxy_config(plain, small) == {"proxy": "synflow", "settings": {}, "space": "nasbench201",
                                          "model_options": {"cells_per_stage": 1, "channels": 4}}
    # a size set by the spec or by the command is one configuration: scores cached at C8 stay hits
    assert config_key(proxy_config(own, small)) == config_key(proxy_config(plain, larger))
    assert config_key(proxy_config(own, small)) != config_key(proxy_config(plain, small))
    for arch in ARCHS:
        scores = score_architecture(arch, [own, plain, create_proxy("params[channels=8]"), create_proxy("params")],
                                    small)
        assert scores[own.name].score == pytest.approx(plain.score(arch, larger).score, rel=1e-6)
        assert scores["synflow"].score == pytest.approx(plain.score(arch, small).score, rel=1e-6)
        assert scores["params[channels=8]"].score > scores["params"].score  # twice the width


@pytest.mark.parametrize("spec, fragment", [
    ("synflow@tse_e", "training settings apply to training-based proxies only"),
    ("synflow[ipc=3]", "synflow is zero-cost (it may set channels and cells)"),
    ("synflow[channels=0]", "channels must be at least 1, got 0"),
    ("random-subset[cells=x]", "cells needs a int value"),
])
def test_bad_sizes_are_one_line_errors(spec, fragment):
    with pytest.raises(UserError, match=re.escape(fragment)):
        create_proxy(spec)


def test_one_rank_mixes_sizes_and_an_ensemble_of_them(tmp_path, table, capsys):
    out = tmp_path / "run"
    argv = ["rank", "--space", "nasbench201", "--sample", "4", "--ground-truth", "cifar10:test:200",
            "--ground-truth-file", str(table), "--dataset", "fake", "--val-per-class", "10", "--channels", "4",
            "--cells", "1", "--device", "cpu", "--bootstrap", "20", "--steps", "3", "--ipc", "4",
            "--ensemble", "mix=params[channels=8]+random-subset[channels=2]@tse_e",
            "--proxy", "params[channels=8],params,mix", "--out", str(out)]
    assert main(argv) == 0
    results = pd.read_csv(out / "results.csv")
    rows = results.pivot_table(index="arch", columns="proxy", values="score")
    assert (rows["params[channels=8]"] > rows["params"]).all()
    trained = results[results["proxy"] == "random-subset[channels=2]"].set_index("arch").reindex(rows.index)
    assert trained["tse_e"].notna().all() and (trained["steps"] == 3).all()
    expected = rank_average(np.stack([rows["params[channels=8]"], trained["tse_e"]], axis=1))
    assert np.allclose(rows["mix"].to_numpy(), expected)
    assert "| mix | 4 |" in capsys.readouterr().out
    keys = json.loads((out / "rank_settings.json").read_text())["proxy_keys"]
    assert keys["params[channels=8]"] == config_key(proxy_config(create_proxy("params"), context(LARGER)))
    assert keys["params"] != keys["params[channels=8]"]
    # the same study resumed at another command-level size is refused, nothing rescored
    assert main([*argv[:-2], "--channels", "8", "--out", str(out)]) == 2


def test_a_zero_cost_vote_warm_starts_a_search(tmp_path):
    from tests.test_search_optuna import FakeProxy

    vote = create_proxy("params+synflow[channels=8]")
    ctx = context(SMALL)
    config = SearchConfig(trials=5, study="w", progress=False, warm_start="params+synflow[channels=8]:3",
                          warm_start_pool=12)
    run_search(FakeProxy(), ctx, config, tmp_path / "run", warm_proxy=vote)
    pool = SPACE.sample(12, 0)
    values = np.array([[c.score(a, c.context_for(ctx)).score for c in vote.components] for a in pool])
    top = [pool[i] for i in np.argsort(-rank_average(values), kind="stable")[:3]]
    assert set(read_results(tmp_path / "run" / "results.csv")["arch"][:3]) == set(top)


@pytest.mark.parametrize("warm, fragment", [
    ("params+random-subset:3", "--warm-start takes a zero-cost proxy or a zero-cost ensemble"),
    ("synflow[steps=2]:3", "training settings apply to training-based proxies only"),
])
def test_a_warm_start_that_trains_is_a_one_line_error(tmp_path, capsys, warm, fragment):
    assert main(["search", "--proxy", "params", "--warm-start", warm, "--trials", "2", "--device", "cpu",
                 "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and "\n" not in err and not (tmp_path / "r").exists()


def test_a_named_ensemble_passes_its_settings_to_every_component():
    vote = create_proxy("zc-vote[channels=16,cells=5]")
    assert vote.name == "zc-vote[cells=5,channels=16]"
    assert [c.name for c in vote.components] == [f"{m}[cells=5,channels=16]" for m in ("synflow", "jacob_cov", "snip")]
    assert all(c.model_options == {"channels": 16, "cells_per_stage": 5} for c in vote.components)
    mix = create_proxy("mix[cells=2]", ensembles={"mix": "params[channels=8]+random-subset[cells=1]@tse_e"})
    assert [c.name for c in mix.components] == ["params[cells=2,channels=8]", "random-subset[cells=1]"]
    assert mix.components[1].rule == "tse_e"
    with pytest.raises(UserError, match="an ensemble has no score rule of its own"):
        create_proxy("zc-vote[cells=5]@tse_e")
