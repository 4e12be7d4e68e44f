"""`d2m-nas generate`: write a synthetic training set at any images-per-class budget"""

from __future__ import annotations

from pathlib import Path

from d2m_nas.commands import add_download_option, add_split_options
from d2m_nas.commands.option_types import COUNT
from d2m_nas.errors import UserError

HELP = "write a synthetic training set at any images-per-class budget"
DESCRIPTION = """Write a synthetic training set file (RUN_DIR/synthetic.pt): from a distilled generator at any
IPC (--generator RUN), or (--method random) a seeded, class-balanced random subset of real
training images, the first baseline. The random subset is drawn only from the training part of
the seeded train/validation split (never from validation or test images).

--select herding chooses the IPC images of every class from a larger pool (--pool candidates per
class) so that their mean embedding under random frozen ConvNets tracks the real class mean (the
training part of the split): the herding coreset baseline for real images, and for generated
ones a cure for the set-level variance of few random draws (benchmarks/README.md).

examples:
  d2m-nas generate --method random --dataset cifar10 --ipc 10 --out runs/random-ipc10
  d2m-nas generate --generator runs/distill/cifar10 --ipc 50
  d2m-nas generate --generator runs/distill/cifar10 --ipc 10 --select herding --pool 200"""
WRITES_RUN_DIR = True



def add_arguments(parser) -> None:
    parser.add_argument("--method", choices=("random", "generator"), default=None,
                        help="random: a seeded random real subset; generator: images from --generator RUN "
                             "(default: generator when --generator is given, else random)")
    parser.add_argument("--dataset", default="cifar10", help="dataset for --method random (default: cifar10)")
    parser.add_argument("--ipc", type=COUNT, default=10, help="images per class (default: 10)")
    add_split_options(parser)
    add_download_option(parser)
    parser.add_argument("--generator", type=Path, metavar="RUN",
                        help="a `d2m-nas distill` run directory whose generator makes the images")
    parser.add_argument("--stage", choices=("distilled", "pretrained"), default="distilled",
                        help="with --generator: the D2M-distilled generator or the GAN before D2M (default: distilled)")
    parser.add_argument("--select", choices=("random", "herding"), default="random",
                        help="random: IPC random draws; herding: the IPC of --pool candidates per class whose "
                             "mean embedding best tracks the real class mean (default: random)")
    parser.add_argument("--pool", type=COUNT, default=200, metavar="N",
                        help="--select herding: candidates per class to choose from (default: 200)")


def run(args) -> int:
    from d2m_nas.cli import start_run

    method = args.method or ("generator" if args.generator else "random")
    if method == "generator" and args.generator is None:
        raise UserError("--method generator needs --generator RUN (a `d2m-nas distill` run directory)")
    if method == "random" and args.generator is not None:
        raise UserError("--generator RUN makes generator images; drop --method random or --generator")
    herding = args.select == "herding"
    if herding and args.pool < args.ipc:
        raise UserError(f"--pool {args.pool} must be at least --ipc {args.ipc}: herding chooses among the pool")
    count = args.pool if herding else args.ipc
    device, out = start_run(args)
    dataset = None
    if method == "random":
        from d2m_nas.data import load_dataset
        from d2m_nas.random_subset import random_real_subset

        dataset = load_dataset(args.dataset, args.data_root, args.download)
        synthetic = random_real_subset(dataset, count, args.seed, args.val_per_class, args.split_seed)
    else:
        from d2m_nas.generator_files import synthesize_from_generator

        if not Path(args.generator).exists():
            raise UserError(f"--generator {args.generator}: no such file or run directory (give a `d2m-nas distill` "
                            "--out, or one of its generator .pt files)")
        synthetic = synthesize_from_generator(Path(args.generator), count, args.seed, device, stage=args.stage)
    if herding:
        from d2m_nas.data import load_dataset
        from d2m_nas.selection import herding_select, real_reference

        if dataset is None:
            dataset = load_dataset(str(synthetic.metadata["dataset"]), args.data_root, args.download)
        reference = real_reference(dataset, args.seed, args.val_per_class, args.split_seed)
        synthetic = herding_select(synthetic, args.ipc, reference, args.seed, device)
    path = synthetic.save(out / "synthetic.pt")
    meta = synthetic.metadata
    chosen = f", herded from {meta['pool_per_class']}" if herding else ""
    print(f"wrote {len(synthetic)} images ({meta['ipc']} per class{chosen}, {meta['method']}, {meta['dataset']}) "
          f"to {path}")
    return 0
