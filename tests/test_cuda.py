"""On a CUDA device: the training proxy, the evaluation protocol and a rank run work there and agree
with the CPU where they must. Skipped without a device; benchmarks/device_check.py runs them."""

import math

import pandas as pd
import pytest
import torch

from d2m_nas.cli import main
from d2m_nas.data import load_dataset, split_train_val
from d2m_nas.evaluation import EvalConfig, train_on_images
from d2m_nas.proxies import ProxyContext, TrainingProxy, TrainingProxyConfig
from search_spaces.registry import create_space

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_training_proxy_records_a_finite_trace_on_cuda():
    dataset = load_dataset("fake")
    train, val = split_train_val(dataset.y_train, 10, 0)
    space = create_space("nasbench201")
    context = ProxyContext(space=space, dataset=dataset, device=torch.device("cuda"), model_options={"channels": 4,
                           "cells_per_stage": 1}, train_indices=train, val_indices=val)
    proxy = TrainingProxy(TrainingProxyConfig(steps=8, batch_size=16, ipc=5), rule="tse_e")
    result = proxy.score(space.sample(1, 0)[0], context)
    assert math.isfinite(result.score) and len(result.extra["trace"]["train_losses"]) == 8
    assert result.extra["peak_memory_kind"] == "cuda_max_allocated"


def test_evaluation_trains_on_cuda():
    images, labels = torch.randn(20, 3, 32, 32), torch.arange(20) % 10
    config = EvalConfig(model="convnet-d3-w16-relu-instancenorm-avgpool", epochs=2, batch_size=10)
    model = train_on_images(images, labels, 10, config, "cuda", seed=0)
    assert next(model.parameters()).device.type == "cuda"


def test_rank_on_cuda_end_to_end(tmp_path, table):
    out = tmp_path / "run"
    assert main(["rank", "--proxy", "random-subset,synflow", "--sample", "4", "--steps", "4", "--ipc", "2",
                 "--ground-truth", "cifar10:test:200", "--ground-truth-file", str(table), "--dataset", "fake",
                 "--val-per-class", "10", "--channels", "4", "--cells", "1", "--device", "cuda",
                 "--bootstrap", "10", "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 8 and results["score"].notna().all()


def test_draws_reach_the_device_unchanged_and_asynchronously():
    from distill.dsa import DSA
    from distill.transfer import to_device

    host = torch.randn(1000)
    assert torch.equal(to_device(host, "cuda").cpu(), host)
    cpu_draw = DSA().sample(8, 32, "cpu", generator=torch.Generator().manual_seed(3))
    cuda_draw = DSA().sample(8, 32, "cuda", generator=torch.Generator().manual_seed(3))
    assert cpu_draw.ops == cuda_draw.ops
    assert all(torch.equal(cpu_draw.params[k], cuda_draw.params[k].cpu()) for k in cpu_draw.params)
