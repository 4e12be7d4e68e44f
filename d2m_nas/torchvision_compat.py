"""Import torchvision even when its compiled operators cannot load.

torchvision wheels are built against one torch build. When they do not match (here: the CUDA
torchvision 0.28 wheel beside the CPU torch 2.13 wheel), `import torchvision` dies in
`_meta_registrations` with "operator torchvision::nms does not exist", because it registers fake
kernels for two operators whose schemas only the compiled library defines. d2m-nas uses
torchvision for dataset downloads and file formats, never for its detection operators, so when
the library cannot load we define those two schemas (no kernels) and let the pure-Python parts
import. Calling torchvision.ops.nms then fails with a clear "no kernel" error, which is honest.

Everything in d2m-nas (and nni, which imports torchvision) must get torchvision via
`import_torchvision()`, or call `ensure_torchvision_importable()` first.
"""

from __future__ import annotations

import importlib.util
import os

import torch

# Operators that torchvision/_meta_registrations.py registers with register_fake by name.
_FAKE_REGISTERED_OPS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keeps the schema definitions alive for the life of the process
compiled_ops_available: bool | None = None


def ensure_torchvision_importable() -> bool:
    """Make `import torchvision` work; return whether its compiled operators are available."""
    global _library, compiled_ops_available
    if compiled_ops_available is not None:
        return compiled_ops_available
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        raise ImportError("torchvision is not installed; install d2m-nas with its dependencies")
    lib_path = os.path.join(os.path.dirname(spec.origin), "_C.so")
    try:
        torch.ops.load_library(lib_path)
        compiled_ops_available = True
    except (OSError, RuntimeError):
        if not _schemas_defined():
            _library = torch.library.Library("torchvision", "DEF")
            for schema in _FAKE_REGISTERED_OPS:
                _library.define(schema)
        compiled_ops_available = False
    return compiled_ops_available


def _schemas_defined() -> bool:
    try:
        torch.ops.torchvision.nms  # noqa: B018 - attribute lookup is the check
        return True
    except (AttributeError, RuntimeError):
        return False


def import_torchvision():
    ensure_torchvision_importable()
    import torchvision

    return torchvision
