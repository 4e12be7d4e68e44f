"""Zero-cost metrics of an untrained network: pure functions of a model and (except synflow and
the cost counts) one minibatch.

Conventions follow the reference code of Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS" (ICLR 2021, github.com/SamsungLabs/zero-cost-nas, foresight/pruners/measures) and, for
NASWOT, Mellor et al. (ICML 2021): the network is in train mode (BN uses batch statistics); the
per-weight metrics are summed over the weights of every Conv2d and Linear layer (biases and BN
excluded); synflow runs in float64 on a BN-free copy with absolute weights and an input of ones.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

BATCH_METRICS = ("snip", "grad_norm", "jacob_cov", "naswot")
COUNT_METRICS = ("params", "flops")  # counted off the layers: no gradient, the cheapest screen


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_params(model: nn.Module) -> float:
    """Number of parameters, in millions (NAS-Bench-201's `params`)."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Multiply-accumulates of Conv2d and Linear layers (plus one add per output for a bias) for
    one input of shape (C, H, W), in millions. This is NAS-Bench-201's `flops` convention
    (e.g. 7.78305 and 220.11969 for its smallest and largest CIFAR-10 networks)."""
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        per_output = module.weight[0].numel()  # in_channels/groups * kh * kw, or in_features
        outputs = output[0].numel()
        total += outputs * per_output + (outputs if module.bias is not None else 0)

    handles = [m.register_forward_hook(hook) for m in _weighted_layers(model)]
    was_training = model.training
    try:
        model.eval()
        parameter = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=parameter.device, dtype=parameter.dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total / 1e6


def synflow(model_without_bn: nn.Module, input_shape: tuple[int, ...]) -> float:
    """Synaptic flow (Tanaka et al. 2020): sum over Conv/Linear weights of |w * dR/dw| where
    R = sum of the outputs of the network with all parameters made positive, for an input of
    ones. Computed in float64 on a copy (the caller's model is not touched). Pass a BN-free copy
    as the reference does (SearchSpace.without_batchnorm)."""
    net = copy.deepcopy(model_without_bn).double().train()
    with torch.no_grad():
        for tensor in net.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad()
    device = next(net.parameters()).device
    output = net(torch.ones((1, *input_shape), dtype=torch.float64, device=device))
    output.sum().backward()
    total = 0.0
    for layer in _weighted_layers(net):
        if layer.weight.grad is not None:
            total += float((layer.weight.detach() * layer.weight.grad).abs().sum())
    return total


def batch_metrics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                  metrics: tuple[str, ...] = BATCH_METRICS) -> dict[str, float]:
    """snip, grad_norm, jacob_cov and NASWOT from ONE forward pass of `model` (train mode) on a
    batch: the loss gradient gives snip and grad_norm, the gradient of the summed outputs with
    respect to the input gives jacob_cov, and the ReLU activation patterns give NASWOT.

    The model's parameter gradients are overwritten."""
    unknown = set(metrics) - set(BATCH_METRICS)
    if unknown:
        raise ValueError(f"unknown batch metric(s) {', '.join(sorted(unknown))}; choose from {', '.join(BATCH_METRICS)}")
    model.train()
    model.zero_grad(set_to_none=True)
    batch = images.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=images.device)

    def relu_codes(module: nn.Module, inputs, output) -> None:
        nonlocal kernel
        codes = (output.detach().reshape(batch, -1) > 0).double()
        kernel += codes @ codes.t() + (1.0 - codes) @ (1.0 - codes).t()

    handles = []
    if "naswot" in metrics:
        handles = [m.register_forward_hook(relu_codes) for m in model.modules() if isinstance(m, nn.ReLU)]
    x = images.detach().clone().requires_grad_("jacob_cov" in metrics)
    try:
        outputs = model(x)
    finally:
        for handle in handles:
            handle.remove()
    results: dict[str, float] = {}
    if "jacob_cov" in metrics:
        (jacobian,) = torch.autograd.grad(outputs, x, torch.ones_like(outputs), retain_graph=True)
        results["jacob_cov"] = jacob_cov_score(jacobian.reshape(batch, -1))
    if "snip" in metrics or "grad_norm" in metrics:
        F.cross_entropy(outputs, labels).backward()
        layers = [m for m in _weighted_layers(model) if m.weight.grad is not None]
        if "snip" in metrics:
            results["snip"] = float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in layers))
        if "grad_norm" in metrics:
            results["grad_norm"] = float(sum(m.weight.grad.norm() for m in layers))
    if "naswot" in metrics:
        results["naswot"] = naswot_score(kernel)
    model.zero_grad(set_to_none=True)
    return {name: results[name] for name in metrics}


def jacob_cov_score(jacobian: torch.Tensor, k: float = 1e-5) -> float:
    """Mellor et al.'s score of the input-Jacobian correlations: -sum(log(v + k) + 1/(v + k))
    over the eigenvalues v of the batch's correlation matrix. NaN when a row is constant (the
    network's output does not depend on its input), as in the reference."""
    rows = jacobian.detach().double().cpu()
    centred = rows - rows.mean(dim=1, keepdim=True)
    norms = centred.norm(dim=1)
    if bool((norms == 0).any()) or not bool(torch.isfinite(rows).all()):
        return float("nan")
    corr = (centred / norms[:, None]) @ (centred / norms[:, None]).t()
    eigenvalues = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(eigenvalues + k) + 1.0 / (eigenvalues + k)).sum())


def naswot_score(kernel: torch.Tensor) -> float:
    """log|det K| of NASWOT's Hamming-similarity kernel of binary ReLU codes."""
    _, logabsdet = torch.linalg.slogdet(kernel.cpu())
    return float(logabsdet)


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP saliency (Lee et al. 2019): sum |w * dL/dw| for the cross-entropy loss of the batch."""
    return batch_metrics(model, images, labels, ("snip",))["snip"]


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum over Conv/Linear layers of the L2 norm of the loss gradient of the layer's weight."""
    return batch_metrics(model, images, labels, ("grad_norm",))["grad_norm"]


def jacob_cov(model: nn.Module, images: torch.Tensor) -> float:
    labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    return batch_metrics(model, images, labels, ("jacob_cov",))["jacob_cov"]


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    labels = torch.zeros(images.shape[0], dtype=torch.long, device=images.device)
    return batch_metrics(model, images, labels, ("naswot",))["naswot"]


__all__ = ["BATCH_METRICS", "COUNT_METRICS", "batch_metrics", "count_flops", "count_params", "grad_norm", "jacob_cov",
           "jacob_cov_score", "naswot", "naswot_score", "snip", "synflow"]
