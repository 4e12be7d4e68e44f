"""Cross-architecture evaluation networks: the DC code's CIFAR AlexNet / VGG-11 / ResNet-18 and timm models.

The parameter counts are worked out here from the reference's layer sizes (VICO-UoE/
DatasetCondensation, networks.py), independently of search_spaces/cifar_nets.py.
"""

import importlib.util
import json

import pytest
import torch
from torch import nn

from d2m_nas import cli
from d2m_nas.errors import UserError
from d2m_nas.evaluation import FIELD_MODEL, EvalConfig, protocol_differences
from search_spaces.cifar_nets import CROSS_ARCH_MODELS, create_eval_network
from search_spaces.convnet import ConvNet


def conv(cin: int, cout: int, k: int, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


def norm(c: int) -> int:
    return 2 * c  # GroupNorm(c, c, affine=True) and BatchNorm2d(c): weight + bias each


def alexnet_params(channels: int, classes: int, bn: bool) -> int:
    # conv5x5 128, pool, conv5x5 192, pool, conv3x3 256, 192, 192, pool -> 192x4x4 (28x28 is padded to 32)
    widths = [(channels, 128, 5), (128, 192, 5), (192, 256, 3), (256, 192, 3), (192, 192, 3)]
    total = sum(conv(i, o, k) + (norm(o) if bn else 0) for i, o, k in widths)
    return total + linear(192 * 4 * 4, classes)


def vgg11_params(channels: int, classes: int) -> int:
    # [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M], conv3x3 with bias + norm; 512x1x1 -> linear
    widths = [channels, 64, 128, 256, 256, 512, 512, 512, 512]
    return sum(conv(i, o, 3) + norm(o) for i, o in zip(widths, widths[1:])) + linear(512, classes)


def resnet18_params(channels: int, classes: int) -> int:
    # bias-free convs; stem conv3x3 64 + norm; 4 stages x 2 basic blocks; 1x1 conv + norm shortcut on change
    total = conv(channels, 64, 3, bias=False) + norm(64)
    in_ch = 64
    for out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        total += conv(in_ch, out, 3, False) + norm(out) + conv(out, out, 3, False) + norm(out)
        if stride != 1 or in_ch != out:
            total += conv(in_ch, out, 1, False) + norm(out)
        total += 2 * (conv(out, out, 3, False) + norm(out))
        in_ch = out
    return total + linear(512, classes)


REFERENCE = {
    "alexnet": lambda c: alexnet_params(c, 10, bn=False),
    "alexnet-bn": lambda c: alexnet_params(c, 10, bn=True),
    "vgg11": lambda c: vgg11_params(c, 10),
    "vgg11-bn": lambda c: vgg11_params(c, 10),
    "resnet18": lambda c: resnet18_params(c, 10),
    "resnet18-bn": lambda c: resnet18_params(c, 10),
}


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_registry_has_the_six_reference_networks():
    assert set(CROSS_ARCH_MODELS) == set(REFERENCE)
    # The well-known CIFAR-10 sizes, as a check on the arithmetic above.
    assert (REFERENCE["alexnet"](3), REFERENCE["vgg11"](3), REFERENCE["resnet18"](3)) == (1872202, 9231114, 11173962)


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_network_matches_the_reference_shapes_and_parameter_count(name, channels, size):
    torch.manual_seed(0)
    model = create_eval_network(name, channels, 10, size)
    assert count(model) == REFERENCE[name](channels)
    model.train()
    out = model(torch.randn(4, channels, size, size))
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    groupnorms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    if name.endswith("-bn"):
        assert batchnorms and not groupnorms
    else:
        assert not batchnorms
        # The reference's instance norm: one group per channel, affine. AlexNet has no norm at all.
        assert all(m.num_groups == m.num_channels and m.affine for m in groupnorms)
        assert bool(groupnorms) == (name != "alexnet")


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("size", [32, 64])
def test_network_trains_a_step(name, size):
    """One SGD step at 32x32 and 64x64 (the classifier follows the feature map): a finite loss, every
    parameter that the loss reaches moved, and the loss on the same batch lower afterwards."""
    torch.manual_seed(0)
    model = create_eval_network(name, 3, 10, size)
    images, labels = torch.randn(8, 3, size, size), torch.arange(8) % 10
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()) if p.grad is not None)
    assert nn.functional.cross_entropy(model(images), labels) < loss


def test_convnet_specs_still_build_convnets():
    model = create_eval_network("convnet-d1-w8-relu-instancenorm-avgpool", 3, 10, 32)
    assert isinstance(model, ConvNet) and model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_unknown_name_is_a_one_line_error_listing_the_choices():
    with pytest.raises(ValueError) as info:
        create_eval_network("resnet50", 3, 10, 32)
    message = str(info.value)
    assert "\n" not in message and "'resnet50'" in message
    for choice in (*REFERENCE, "timm:NAME", "convnet-d3-w128-relu-instancenorm-avgpool"):
        assert choice in message


def test_eval_config_accepts_the_names_and_reports_the_model_as_a_difference():
    EvalConfig(model="resnet18").validate()
    EvalConfig(model="VGG11-BN").validate()
    assert protocol_differences(EvalConfig(model="ResNet18"))["model"] == {"used": "resnet18", "protocol": FIELD_MODEL}
    assert "model" not in protocol_differences(EvalConfig())
    with pytest.raises(UserError, match=r"^--model: unknown evaluation network 'lenet'; choose .*resnet18"):
        EvalConfig(model="lenet").validate()
    with pytest.raises(UserError, match=r"^--model: malformed ConvNet string"):
        EvalConfig(model="convnet-d3").validate()


needs_timm = pytest.mark.skipif(importlib.util.find_spec("timm") is None,
                                reason="timm is not installed (pip install 'd2m-nas[timm]')")


@needs_timm
def test_a_timm_model_builds_and_runs_on_32x32():
    from d2m_nas.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()  # timm imports torchvision
    model = create_eval_network("timm:resnet10t", 3, 10, 32)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    EvalConfig(model="timm:resnet10t").validate()
    with pytest.raises(UserError, match=r"^--model: timm has no model 'no-such-net'"):
        EvalConfig(model="timm:no-such-net").validate()


def test_evaluate_end_to_end_with_alexnet(tmp_path, capsys):
    gen_dir, eval_dir = tmp_path / "gen", tmp_path / "eval"
    assert cli.main(["generate", "--method", "random", "--dataset", "fake", "--ipc", "1", "--val-per-class", "10",
                     "--seed", "0", "--out", str(gen_dir), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(gen_dir), "--runs", "1", "--epochs", "1", "--batch-size", "32",
                     "--model", "alexnet", "--device", "cpu", "--out", str(eval_dir)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[0]
    record = json.loads((eval_dir / "eval.json").read_text())
    assert record["config"]["model"] == "alexnet" and len(record["accuracies"]) == 1
    assert record["protocol"] == "reduced"
    assert record["differences"]["model"] == {"used": "alexnet", "protocol": FIELD_MODEL}
    assert summary == record["summary"] and f"AlexNet [protocol {FIELD_MODEL}], 1 epochs" in summary


def test_the_distillation_benchmark_evaluates_every_set_on_every_network(tmp_path, capsys, benchmark_script):
    script = benchmark_script("distill_accuracy")
    out = tmp_path / "acc.jsonl"
    argv = ["--dataset", "fake", "--methods", "random", "--ipcs", "1", "--epochs", "1", "--runs", "1",
            "--models", "convnet-d1-w8-relu-instancenorm-avgpool", "alexnet", "--val-per-class", "2", "--out", str(out)]
    script.main(argv)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["method"], r["model"]) for r in rows] == [("random", "convnet-d1-w8-relu-instancenorm-avgpool"),
                                                         ("random", "alexnet")]
    assert all(0 <= r["mean"] <= 100 and r["differences"] for r in rows)
    capsys.readouterr()
    script.main(argv)  # a rerun skips the (method, IPC, network) rows already written
    assert capsys.readouterr().out == "" and len(out.read_text().splitlines()) == 2
