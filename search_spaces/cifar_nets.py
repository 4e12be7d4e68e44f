"""The cross-architecture evaluation networks of the dataset-distillation literature.

A synthetic set distilled with one network is judged by how well it trains others; the DC/DSA/DM
code (VICO-UoE/DatasetCondensation, `networks.py`) fixes which: AlexNet, VGG-11 and ResNet-18 in
CIFAR-size variants, each with and without batch norm. The definitions here match that code layer
for layer (so parameter counts and accuracies are comparable with the papers), including its quirks:
"instance norm" is `GroupNorm(C, C, affine=True)`, AlexNet keeps 5x5 convs with stride 1 and a
single linear classifier, VGG-11 has one linear layer on 512 features, and ResNet-18 is the
kuangliu CIFAR ResNet (3x3 stem, no stem pooling, bias-free convs, 4x4 average pool).

As in `ConvNet`, 28x28 inputs (MNIST, Fashion-MNIST) are padded to 32x32 by the first conv of
AlexNet and VGG-11 so that their feature sizes match; ResNet-18 takes 28x28 as it is (its strided
convs give 4x4 maps either way). Other sizes work too: classifier widths follow the feature maps.

`create_eval_network(name, ...)` builds any evaluation network by name: a ConvNet spec string, one
of `CROSS_ARCH_MODELS`, or `timm:NAME` for any timm model (timm is imported only then).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.convnet import ConvNetSpec, create_convnet

TIMM_PREFIX = "timm:"


def _norm(kind: str, channels: int) -> nn.Module:
    """Instance norm as the DC code writes it (one group per channel, affine), or batch norm."""
    if kind == "instancenorm":
        return nn.GroupNorm(channels, channels, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose from instancenorm, batchnorm, none")


def _first_padding(image_size: int, kernel: int) -> int:
    """'Same' padding, widened at 28x28 so the first conv outputs 32x32 (the DC convention)."""
    return kernel // 2 + (2 if image_size == 28 else 0)


class AlexNet(nn.Module):
    """DC's CIFAR AlexNet: conv5x5(128)-pool, conv5x5(192)-pool, conv3x3 256/192/192-pool, linear.

    The reference has no normalisation (`AlexNet`); `norm="batchnorm"` is its `AlexNetBN`.
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, image_size: int = 32, norm: str = "none") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, size = channels, image_size
        # (out channels, kernel, pool after)
        for i, (out_ch, kernel, pool) in enumerate(((128, 5, True), (192, 5, True), (256, 3, False),
                                                     (192, 3, False), (192, 3, True))):
            padding = _first_padding(image_size, kernel) if i == 0 else kernel // 2
            layers += [nn.Conv2d(in_ch, out_ch, kernel, padding=padding), _norm(norm, out_ch), nn.ReLU(inplace=True)]
            size += 2 * padding - kernel + 1
            if pool:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_ch = out_ch
        if size < 1:
            raise ValueError(f"AlexNet pools 3 times: too deep for {image_size}x{image_size} inputs")
        self.features = nn.Sequential(*layers)
        self.embedding_dim = in_ch * size * size
        self.fc = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(x))


VGG11_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """DC's CIFAR VGG-11: eight conv3x3-norm-ReLU layers, five max-pools, one linear layer.

    Instance norm by default, as the reference's `VGG11`; `norm="batchnorm"` is its `VGG11BN`.
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, size = channels, image_size
        for item in VGG11_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                size //= 2
                continue
            padding = _first_padding(image_size, 3) if not layers else 1
            layers += [nn.Conv2d(in_ch, item, 3, padding=padding), _norm(norm, item), nn.ReLU(inplace=True)]
            size += 2 * padding - 2
            in_ch = item
        if size < 1:
            raise ValueError(f"VGG-11 pools 5 times: too deep for {image_size}x{image_size} inputs")
        self.features = nn.Sequential(*layers)
        self.embedding_dim = in_ch * size * size  # 512 at 32x32, as the reference's classifier
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class BasicBlock(nn.Module):
    """Two bias-free conv3x3-norm layers plus the input (projected by conv1x1-norm when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(norm, out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.norm2 = _norm(norm, out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), _norm(norm, out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """DC's CIFAR ResNet-18: conv3x3(64)-norm-ReLU stem, four stages of two basic blocks
    (64, 128, 256, 512 channels; stride 2 from the second), 4x4 average pool, linear.

    Instance norm by default, as the reference's `ResNet18`; `norm="batchnorm"` is its `ResNet18BN`.
    """

    def __init__(self, channels: int = 3, num_classes: int = 10, image_size: int = 32,
                 norm: str = "instancenorm") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, padding=1, bias=False)
        self.norm1 = _norm(norm, 64)
        stages, in_ch, size = [], 64, image_size
        for out_ch, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages.append(nn.Sequential(BasicBlock(in_ch, out_ch, stride, norm), BasicBlock(out_ch, out_ch, 1, norm)))
            size = (size - 1) // stride + 1  # a 3x3 conv with padding 1
            in_ch = out_ch
        if size < 4:
            raise ValueError(f"ResNet-18 ends with a 4x4 average pool: too small for {image_size}x{image_size} inputs")
        self.layers = nn.Sequential(*stages)
        self.embedding_dim = in_ch * (size // 4) ** 2  # 512 at 32x32 and 28x28
        self.classifier = nn.Linear(self.embedding_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.norm1(self.conv1(x))))
        return F.avg_pool2d(out, 4).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


Builder = Callable[[int, int, int], nn.Module]  # (channels, num_classes, image_size) -> network

# name -> (builder, readable title); the reference's name is in the comment.
_MODELS: dict[str, tuple[Builder, str]] = {
    "alexnet": (lambda c, k, s: AlexNet(c, k, s, "none"), "AlexNet"),  # AlexNet
    "alexnet-bn": (lambda c, k, s: AlexNet(c, k, s, "batchnorm"), "AlexNet (batch norm)"),  # AlexNetBN
    "vgg11": (lambda c, k, s: VGG11(c, k, s, "instancenorm"), "VGG-11 (instance norm)"),  # VGG11
    "vgg11-bn": (lambda c, k, s: VGG11(c, k, s, "batchnorm"), "VGG-11 (batch norm)"),  # VGG11BN
    "resnet18": (lambda c, k, s: ResNet18(c, k, s, "instancenorm"), "ResNet-18 (instance norm)"),  # ResNet18
    "resnet18-bn": (lambda c, k, s: ResNet18(c, k, s, "batchnorm"), "ResNet-18 (batch norm)"),  # ResNet18BN
}
CROSS_ARCH_MODELS: dict[str, Builder] = {name: builder for name, (builder, _) in _MODELS.items()}

CHOICES = ("a ConvNet spec (e.g. convnet-d3-w128-relu-instancenorm-avgpool), "
           f"{', '.join(CROSS_ARCH_MODELS)} or {TIMM_PREFIX}NAME (any timm model)")


def is_convnet(name: str) -> bool:
    return name.strip().lower().startswith("convnet")


def _import_timm():
    try:
        import timm
    except ImportError:
        raise ValueError("timm models need timm, which is not installed: pip install timm") from None
    return timm


def _canonical(name: str, check_timm: bool) -> str:
    text = name.strip()
    if is_convnet(text):
        return str(ConvNetSpec.parse(text))
    if text.lower().startswith(TIMM_PREFIX):
        model = text[len(TIMM_PREFIX):].strip()
        if not model:
            raise ValueError(f"{TIMM_PREFIX}NAME needs a model name, e.g. {TIMM_PREFIX}resnet10t")
        if check_timm and not _import_timm().is_model(model):
            raise ValueError(f"timm has no model {model!r}; see timm.list_models()")
        return TIMM_PREFIX + model
    if text.lower() in CROSS_ARCH_MODELS:
        return text.lower()
    raise ValueError(f"unknown evaluation network {name!r}; choose {CHOICES}")


def canonical_eval_network(name: str) -> str:
    """The network's canonical name, or a one-line ValueError listing the choices.

    `timm:` names are checked against timm's registry, which imports timm (slow, so only for them).
    """
    return _canonical(name, check_timm=True)


def describe_eval_network(name: str) -> str:
    """A readable title: 'ResNet-18 (instance norm)', 'timm resnet10t'; a ConvNet spec as it is."""
    text = _canonical(name, check_timm=False)
    if text in _MODELS:
        return _MODELS[text][1]
    if text.startswith(TIMM_PREFIX):
        return f"timm {text[len(TIMM_PREFIX):]}"
    return text


def create_eval_network(name: str, channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """A freshly initialised evaluation network (ConvNet spec, cross-architecture name or timm:NAME)."""
    text = canonical_eval_network(name)
    if is_convnet(text):
        return create_convnet(ConvNetSpec.parse(text), channels, num_classes, image_size)
    if text.startswith(TIMM_PREFIX):
        timm = _import_timm()
        return timm.create_model(text[len(TIMM_PREFIX):], pretrained=False, num_classes=num_classes, in_chans=channels)
    return CROSS_ARCH_MODELS[text](channels, num_classes, image_size)
