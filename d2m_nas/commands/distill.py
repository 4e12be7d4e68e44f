"""`d2m-nas distill`: distill a dataset into a conditional generator (D2M) or a DM image set"""

from __future__ import annotations

import argparse
from pathlib import Path

from d2m_nas.commands import add_download_option, add_split_options
from d2m_nas.commands.config_options import add_config_options
from d2m_nas.commands.option_types import COUNT, POSITIVE, WHOLE, Numbers

HELP = "distill a dataset into a conditional generator (D2M) or a DM image set"
DESCRIPTION = """Pre-train a class-conditional generator on the real dataset (unless --generator is given), then
distill the dataset into its weights with D2M's attention/embedding and prediction matching. The run
directory receives generator_pretrained.pt, generator.pt, losses.csv and summary.json; rerunning with
the same --out resumes from the last checkpoint. Use `d2m-nas generate --generator RUN_DIR --ipc K`
afterwards for any images-per-class budget.

--method dm distills a DM image set (learnable pixels) at one --ipc into RUN_DIR/synthetic.pt; a new
budget needs a new run.

Presets: cpu-pool (the default: the cpu generator with 50 learned latents a class started from real
images, IPC 10 and 50 above random real images; about 25 minutes on 2 idle CPU cores), cpu (the same
generator without the pool: about 15 minutes of one core, but its sets train worse than random real
images), tiny (seconds; use with --dataset fake), paper (GPU scale). Rerunning an existing run
without --preset resumes it with the preset it was started with."""
DEFAULT_PRESET = "cpu-pool"
WRITES_RUN_DIR = True


def add_arguments(parser):
    from d2m_nas.distill_runs import D2M_MATCHING
    parser.add_argument("--dataset", default="cifar10", help="dataset name (default: cifar10)")
    parser.add_argument("--preset", help=f"cpu-pool | cpu | tiny | paper (default: {DEFAULT_PRESET}, or the preset "
                        "an existing run in --out was started with)")
    parser.add_argument("--method", default="d2m", choices=("d2m", "dm"), help="d2m (default) or dm")
    parser.add_argument("--ipc", type=COUNT, help="images per class for --method dm")
    parser.add_argument("--generator", type=Path, metavar="PATH",
                        help="start D2M from this generator checkpoint or run directory instead of pre-training")
    parser.add_argument("--resume", action="store_true",
                        help="require an existing run in --out to continue (rerunning with the same --out resumes anyway)")
    add_split_options(parser)  # distillation never sees the validation images a search scores on
    add_download_option(parser)
    group = parser.add_argument_group("overrides of the preset")
    group.add_argument("--pretrain-steps", type=WHOLE, metavar="N", help="GAN pre-training generator updates")
    group.add_argument("--iterations", type=WHOLE, metavar="N", help="D2M (or DM) iterations")
    group.add_argument("--lr", type=POSITIVE, help="D2M (or DM) learning rate")
    group.add_argument("--optimizer", choices=("adam", "sgd"), help="D2M (or DM) optimiser")
    group.add_argument("--learn", choices=("all", "conditional", "embedding", "latents"),
                       help="generator parameters D2M learns (all includes the latent pool; latents: the pool alone)")
    group.add_argument("--latent-lr", type=POSITIVE, metavar="LR",
                       help="the latent pool's learning rate (default: --lr's); the latents start at N(0, I), so "
                            "steps of the weights' size barely move them")
    group.add_argument("--latent-pool", type=WHOLE, metavar="K",
                       help="learn K latents per class with D2M and match their images instead of fresh draws; "
                            "generation takes them first (IPC <= K: all learned), then fresh draws (default: 0)")
    group.add_argument("--latent-init", choices=("normal", "real"),
                       help="where the latent pool starts: normal (N(0, I), default) or real (the inversions of K "
                            "random real images of each class, as IT-GAN and GLaD start: made before the first "
                            "iteration; at the cpu preset's size one CPU core takes about 1.5 s a step per 100 images)")
    group.add_argument("--inversion-steps", type=WHOLE, metavar="N",
                       help="Adam steps of --latent-init real's inversion (default: 100)")
    group.add_argument("--tuning-steps", type=WHOLE, metavar="N",
                       help="after --latent-init real's inversion, N Adam steps that fit the generator's weights to "
                            "the pool's real images from their latents (pivotal tuning, PTI): a start closer to the "
                            "real images than a small generator's range allows (default: 0; costs about as much a "
                            "step as the inversion)")
    group.add_argument("--tuning-lr", type=POSITIVE, metavar="LR", help="the tuning's Adam rate (default: 3e-4, PTI's)")
    group.add_argument("--tuning-batch", type=WHOLE, metavar="N",
                       help="images a tuning step, in a fresh order each pass over the pool (default: 0, the whole "
                            "pool every step); on the cpu preset's generator, a pool of 500: 1,000 steps of 50 at "
                            "--tuning-lr 1e-3 fit it to 24.4 dB, 300 whole-pool steps at 3e-4 (3x the work) to 22.5")
    group.add_argument("--match-first", type=Numbers(WHOLE), metavar="K[,K...]",
                       help="also match each class's first K pool images as a set of their own, beside the whole "
                            "pool (needs --syn-per-class equal to --latent-pool): IPC K, which generation takes from "
                            "the pool's first K, is then distilled for itself too; several, e.g. 1,10, distill "
                            "several budgets at once (default: 0, none)")
    group.add_argument("--trained-nets", type=WHOLE, metavar="Q",
                       help="match through a queue of Q ConvNets that are trained on real images as D2M goes, one "
                            "SGD step per use (IDM's model queue), instead of a fresh random ConvNet per iteration: "
                            "features that separate the classes, not only colour and texture (default: 0)")
    group.add_argument("--net-lr", type=POSITIVE, metavar="LR", help="the queued ConvNets' SGD learning rate (default: 0.01)")
    group.add_argument("--net-max-steps", type=WHOLE, metavar="N",
                       help="re-initialise a queued ConvNet after N training steps (default: 0, never)")
    add_config_options(group, D2M_MATCHING, default_label="D2M")  # --power, --lambda-pred, ... (DM's differ)
    group.add_argument("--real-per-class", type=COUNT, metavar="N", help="real images per class per iteration")
    group.add_argument("--syn-per-class", type=COUNT, metavar="N", help="generated images per class per iteration")
    group.add_argument("--generator-width", type=COUNT, metavar="N", help="generator width (BigGAN ch)")
    group.add_argument("--checkpoint-every", type=COUNT, metavar="N", help="steps between checkpoints")
    group.add_argument("--batch-classes", action=argparse.BooleanOptionalAction, default=None,
                       help="match every class in one pass of the ConvNet (and the generator) instead of class by "
                            "class: the same loss and draws, larger kernels, more memory (default: on a GPU only; "
                            "on an H200 2.6x as fast, on a 2-core CPU 0.67x)")
    group.add_argument("--dm-matching", choices=("embedding", "d2m"),
                       help="DM loss: embedding (standard DM, default) or d2m (attention + embedding + prediction)")


def preset_name(args) -> str:
    """--preset; without it, the preset the run in --out was started with (a rerun resumes as it began,
    whatever the default became since), else the default."""
    from d2m_nas.run_dir import recorded_config

    if args.preset is not None:
        return args.preset
    previous = recorded_config(Path(args.out)) if args.out is not None else {}
    if previous.get("command") == "distill" and isinstance(previous.get("preset"), str):
        return previous["preset"]
    return DEFAULT_PRESET


def settings_from_args(args):
    from d2m_nas.commands.config_options import config_from_args
    from d2m_nas.distill_runs import D2M_MATCHING, preset, with_overrides
    from d2m_nas.errors import UserError

    args.preset = preset_name(args)
    settings = preset(args.preset)
    latent_init = getattr(args, "latent_init", None) or settings.d2m.latent_init  # the preset's counts
    for name in ("inversion_steps", "tuning_steps", "tuning_lr", "tuning_batch"):
        if getattr(args, name, None) is not None and latent_init != "real":
            raise UserError(f"--{name.replace('_', '-')} needs --latent-init real")
    for name in ("iterations", "pretrain_steps", "real_per_class", "syn_per_class", "generator_width",
                 "checkpoint_every", "ipc"):
        value = getattr(args, name, None)
        if value is not None and value < 1 and not (name in ("iterations", "pretrain_steps") and value == 0):
            raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    common = {"iterations": args.iterations, "lr": args.lr, "optimizer": args.optimizer,
              "real_per_class": args.real_per_class, "seed": args.seed, "batch_classes": args.batch_classes}
    if args.method == "dm":
        dm = dict(common, ipc=args.ipc)
        settings = with_overrides(settings, dm=dm, checkpoint_every=args.checkpoint_every)
        if args.dm_matching == "d2m":
            settings = with_overrides(settings, dm={"matching": D2M_MATCHING})
        return with_overrides(settings, dm={"matching": config_from_args(settings.dm.matching, args)})
    return with_overrides(
        settings, pretrain={"steps": args.pretrain_steps, "seed": args.seed},
        d2m=dict(common, syn_per_class=args.syn_per_class, learn=args.learn, latent_pool=args.latent_pool,
                 latent_lr=args.latent_lr, latent_init=args.latent_init, inversion_steps=args.inversion_steps,
                 tuning_steps=args.tuning_steps, tuning_lr=args.tuning_lr,
                 tuning_batch=args.tuning_batch, match_first=args.match_first,
                 trained_nets=args.trained_nets, net_lr=args.net_lr,
                 net_max_steps=args.net_max_steps,
                 matching=config_from_args(settings.d2m.matching, args)),
        generator_width=args.generator_width, checkpoint_every=args.checkpoint_every)


def run(args) -> int:
    from d2m_nas.cli import start_run
    from d2m_nas.data import load_dataset
    from d2m_nas.distill_runs import run_d2m, run_dm
    from d2m_nas.errors import UserError

    if args.method == "dm" and args.ipc is None:
        raise UserError("--method dm needs --ipc K (a DM set is distilled for one images-per-class budget)")
    if args.method == "d2m" and args.ipc is not None:
        raise UserError("--ipc applies to --method dm; a D2M generator makes any IPC: "
                        "use `d2m-nas generate --generator RUN_DIR --ipc K` after distilling")
    if args.method == "dm" and args.generator is not None:
        raise UserError("--generator applies to --method d2m; DM learns pixels, not a generator")
    if args.method == "dm" and any(getattr(args, name) is not None
                                   for name in ("latent_pool", "latent_lr", "latent_init", "inversion_steps",
                                                "tuning_steps", "tuning_lr", "tuning_batch", "match_first")):
        raise UserError("--latent-pool, --latent-lr, --latent-init, --inversion-steps, --tuning-steps, --tuning-lr, "
                        "--tuning-batch and --match-first apply to --method d2m; DM learns pixels, not latents")
    if args.method == "dm" and any(v is not None for v in (args.trained_nets, args.net_lr, args.net_max_steps)):
        raise UserError("--trained-nets, --net-lr and --net-max-steps apply to --method d2m")
    if args.trained_nets in (None, 0) and (args.net_lr is not None or args.net_max_steps is not None):
        raise UserError("--net-lr and --net-max-steps need --trained-nets Q (Q >= 1)")
    if args.resume:
        state = "dm_state.pt" if args.method == "dm" else "pretrain_state.pt"
        if args.out is None or not any((Path(args.out) / f).exists()
                                       for f in (state, "d2m_state.pt", "generator_pretrained.pt")):
            raise UserError(f"--resume: no interrupted run in {args.out or '(no --out given)'}; "
                            "pass the --out of the run to continue")
    settings = settings_from_args(args)
    device, out = start_run(args)
    dataset = load_dataset(args.dataset, args.data_root, args.download)
    dataset.to(device)
    if args.method == "dm":
        result = run_dm(dataset, settings, out, device, args.val_per_class, args.split_seed)
        print(f"DM set ({args.ipc} images per class) written to {out / 'synthetic.pt'} "
              f"after {result['step']} iterations ({result['elapsed_s']:.0f} s of training)")
    else:
        result = run_d2m(dataset, settings, out, device, args.generator, args.val_per_class, args.split_seed)
        print(f"distilled generator written to {out / 'generator.pt'} (pre-trained: {out / 'generator_pretrained.pt'}); "
              f"make a training set with `d2m-nas generate --generator {out} --ipc K`")
        if "start_psnr" in result:
            print("the real start reproduces its images at "
                  + ", then ".join(f"{db:.2f} dB {stage}" for stage, db in result["start_psnr"].items()) + " (PSNR)")
    return 0
