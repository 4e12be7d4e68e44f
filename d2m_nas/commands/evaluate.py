"""`d2m-nas evaluate`: train ConvNet-3 on a synthetic set with the field's protocol and report test accuracy"""

from __future__ import annotations

import json
from pathlib import Path

from d2m_nas.commands import add_download_option
from d2m_nas.commands.config_options import add_config_options, config_from_args
from d2m_nas.commands.option_types import COUNT

HELP = "train ConvNet-3 on a synthetic set with the field's protocol and report test accuracy"
DESCRIPTION = """Train the evaluation ConvNet on a synthetic set (SGD 0.01, momentum 0.9, wd 5e-4, batch 256, DSA,
1000 epochs, lr x0.1 at half) and report mean +- std test accuracy over --runs runs. Every knob
can be reduced; RUN_DIR/eval.json and the printed line say whether the protocol was "full" or
"reduced" and what differed. The dataset named in the set's metadata is loaded from the data root.

examples:
  d2m-nas evaluate runs/random-ipc10 --runs 5
  d2m-nas evaluate runs/random-ipc10/synthetic.pt --epochs 300 --device cpu"""
WRITES_RUN_DIR = True


def add_arguments(parser) -> None:
    from d2m_nas.evaluation import EvalConfig

    parser.add_argument("synthetic", type=Path, metavar="SYNTHETIC",
                        help="a synthetic-set file, or a run directory holding synthetic.pt")
    parser.add_argument("--runs", type=COUNT, default=3, help="independent training runs (default: 3)")
    # overrides of the protocol (whose defaults depend on the set's image size)
    add_config_options(parser.add_argument_group("the protocol's settings"), EvalConfig(), default_label="protocol")
    add_download_option(parser)


def run(args) -> int:
    from d2m_nas.cli import start_run
    from d2m_nas.data import load_dataset, place_dataset
    from d2m_nas.evaluation import evaluate_synthetic, field_protocol
    from d2m_nas.synthetic import SyntheticSet
    from distill.atomic import atomic_write_text

    synthetic = SyntheticSet.load(args.synthetic)  # fail on a bad file before creating a run directory
    config = field_protocol(int(synthetic.metadata["image_size"]))
    config = config_from_args(config, args)
    config.validate()
    dataset = load_dataset(str(synthetic.metadata["dataset"]), args.data_root, args.download)
    device, out = start_run(args)
    place_dataset(dataset, device)  # test images on the accelerator once, when they fit
    report = evaluate_synthetic(synthetic, dataset, config, runs=args.runs, device=device, seed=args.seed)
    record = {"synthetic": str(args.synthetic), "synthetic_metadata": _without_indices(synthetic.metadata),
              "summary": report.summary()} | report.to_dict()
    atomic_write_text(out / "eval.json", json.dumps(record, indent=2) + "\n")
    print(report.summary())
    print(f"wrote {out / 'eval.json'}")
    return 0


def _without_indices(metadata: dict) -> dict:
    """The set's metadata for the record, without long per-image lists."""
    return {k: v for k, v in metadata.items() if not (isinstance(v, (list, tuple)) and len(v) > 16)}
