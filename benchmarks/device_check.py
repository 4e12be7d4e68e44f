"""The device check (issue 13): one command for a session that is lent a GPU, about 8 minutes,
printing one JSON object. Every part is timed, and a part that fails, or outruns what is left
of --budget-s, is recorded with its error instead of stopping the rest (a lent device is too
scarce to lose to one failure or one slow part).

    python benchmarks/device_check.py --device cuda --data-root DIR > device_check.json
    python benchmarks/device_check.py --tiny          # the same code path on the CPU, fake data, seconds

Parts:
  tests       the tests that need a CUDA device (`pytest -m cuda`): passed / failed / skipped
  proxy_loop  the training proxy's loop against a bare forward/backward/SGD loop
              (benchmarks/proxy_throughput.py; ratio of images per second, median over archs)
  rank        `d2m-nas rank --workers N` with a training proxy at N = 1, 4 and 16 (one thread each,
              a fresh run directory and cache per count; benchmarks/rank_workers.py): architectures
              per second of the whole sample, and the speed-up over one worker
  rank_mps    the rank part again under NVIDIA MPS (`nvidia-cuda-mps-control -d`), which lets the
              workers' kernels share the GPU at once instead of time-slicing between their contexts
              (not in the default parts: a machine may not allow it; a part that fails says so)
  distill     pre-training steps and D2M iterations per second at the `paper` preset's sizes, the
              full preset's projection, and IPC 10 of random real / pre-trained G / D2M G under
              the reduced protocol (benchmarks/paper_preset_gpu.py); --latent-pool K distills with
              K learned latents per class, --trained-nets Q matches through Q ConvNets trained on real
              images (IDM's model queue), --cross-arch alexnet,vgg11,resnet18 evaluates the three
              sets on those networks too
  class_batching  D2M and DM iterations per second at the `paper` preset's sizes, class by class
              against all classes in one pass (benchmarks/class_batching.py), and their agreement
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # its sibling modules, also when a test loads it by path

from bounded_run import run_bounded  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--data-root", type=Path)
    p.add_argument("--dataset", default="cifar10", help="fake measures speed without the real data (default: cifar10)")
    p.add_argument("--workers", default="1,4,16", help="process counts for the rank part (default: 1,4,16)")
    p.add_argument("--sample", type=int, default=64, help="architectures in the rank part's sample (default: 64)")
    p.add_argument("--steps", type=int, default=200, help="training steps per architecture in the rank part")
    p.add_argument("--pretrain-steps", type=int, default=1000, help="distill part: GAN pre-training steps")
    p.add_argument("--iterations", type=int, default=200, help="distill part: D2M iterations")
    p.add_argument("--eval-epochs", type=int, default=300, help="distill part: evaluation epochs per IPC-10 set")
    p.add_argument("--latent-pool", type=int, default=0, metavar="K", help="distill part: learned latents per class")
    p.add_argument("--trained-nets", type=int, default=0, metavar="Q",
                   help="distill part: match through Q ConvNets trained on real images (distill --trained-nets)")
    p.add_argument("--cross-arch", default="", metavar="SPEC,...",
                   help="distill part: evaluation networks besides the protocol's ConvNet (e.g. alexnet,vgg11,resnet18)")
    p.add_argument("--parts", default="tests,proxy_loop,rank,distill,class_batching")
    p.add_argument("--budget-s", type=float, default=480,
                   help="wall seconds for the whole check: a part still running when they are spent is stopped")
    p.add_argument("--tiny", action="store_true", help="CPU, fake data, minimal sizes: checks the script only")
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "d2m-nas-device-check")
    return p.parse_args(argv)


class Deadline:
    """What is left of --budget-s (args.deadline); every part's subprocesses stop when it is spent."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        left = min(cap, self.ends - time.monotonic())
        if left <= 0:
            raise TimeoutError("no time left in --budget-s")
        return left


def _run(args, command: list[str], cap: float, threads: int | None = None) -> subprocess.CompletedProcess:
    timeout = args.deadline.left(cap)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return run_bounded(command, timeout, env=env, cwd=REPO)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def part_tests(args) -> dict:
    done = _run(args, [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests"], 900)
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|error)", done.stdout)}
    return {"returncode": done.returncode, **counts, "tail": done.stdout.strip().splitlines()[-1:]}


def part_proxy_loop(args) -> dict:
    tiny = ["--dataset", "fake", "--val-per-class", "5", "--ipc", "5", "--settings", "4x1:2", "--archs", "1",
            "--repeats", "1", "--batch-size", "8"]
    real = ["--dataset", args.dataset, "--settings", "8x1:100,16x5:20", "--archs", "3", "--repeats", "3"]
    command = [sys.executable, str(REPO / "benchmarks" / "proxy_throughput.py"), "--device", args.device,
               "--workdir", str(args.workdir / "throughput"), *(tiny if args.tiny else real)]
    if args.data_root:
        command += ["--data-root", str(args.data_root)]
    done = _run(args, command, 600, threads=1 if args.tiny else None)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return {"summaries": [row for row in _json_lines(done.stdout) if row.get("summary")]}


def part_rank(args, extra_env: dict[str, str] | None = None) -> dict:
    import rank_workers

    options = argparse.Namespace(tiny=args.tiny, ipc=50, steps=args.steps, dataset=args.dataset, seed=0,
                                 device=args.device, data_root=args.data_root)
    table = rank_workers.tiny_table(args.workdir) if args.tiny else None
    argv = rank_workers.rank_argv(options, 4 if args.tiny else args.sample, table)
    return {"runs": rank_workers.measure([int(w) for w in args.workers.split(",")], argv, args.workdir / "rank",
                                         args.device, timeout=args.deadline.left(900),
                                         extra_env=extra_env)}


def part_rank_mps(args) -> dict:
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise RuntimeError("nvidia-cuda-mps-control is not on PATH: no MPS here")
    folder = args.workdir / "mps"
    folder.mkdir(parents=True, exist_ok=True)
    # the daemon and the workers meet in this folder; the workers get it through their environment
    pipes = {"CUDA_MPS_PIPE_DIRECTORY": str(folder), "CUDA_MPS_LOG_DIRECTORY": str(folder)}
    mps_env = {**os.environ, **pipes}
    try:
        started = subprocess.run([control, "-d"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 env=mps_env, timeout=args.deadline.left(30))
        if started.returncode != 0:
            raise RuntimeError(f"nvidia-cuda-mps-control -d failed: {(started.stderr or started.stdout).strip()}")
        return {"mps": True, **part_rank(args, extra_env=pipes)}
    finally:
        subprocess.run([control], input="quit\n", capture_output=True, text=True, env=mps_env, timeout=30)


def part_distill(args) -> dict:
    sizes = ["--tiny", "--pretrain-steps", "2", "--iterations", "2", "--epochs", "1", "--runs", "1", "--ipc", "2"] \
        if args.tiny else ["--pretrain-steps", str(args.pretrain_steps), "--iterations", str(args.iterations),
                           "--epochs", str(args.eval_epochs), "--runs", "2", "--ipc", "10"]
    models = [m for m in args.cross_arch.split(",") if m]
    command = [sys.executable, str(REPO / "benchmarks" / "paper_preset_gpu.py"), "--device", args.device,
               "--out", str(args.workdir / "distill"), "--latent-pool", str(args.latent_pool),
               "--trained-nets", str(args.trained_nets), *sizes]
    if models:
        command += ["--cross-arch", *models]
    if args.data_root:
        command += ["--data-root", str(args.data_root)]
    done = _run(args, command, 600, threads=1 if args.tiny else None)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    result = _json_lines(done.stdout)[-1]
    return {key: result[key] for key in ("device", "latent_pool", "trained_nets", "pretrain", "d2m",
                                         "projected_full_preset_h", "evaluation")}


def part_class_batching(args) -> dict:
    sizes = ["--preset", "tiny", "--iterations", "2"] if args.tiny else ["--preset", "paper", "--iterations", "20"]
    command = [sys.executable, str(REPO / "benchmarks" / "class_batching.py"), "--device", args.device, *sizes]
    done = _run(args, command, 300, threads=1 if args.tiny else None)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed")
    return {"summaries": [row for row in _json_lines(done.stdout) if row.get("summary")]}


PARTS = {"tests": part_tests, "proxy_loop": part_proxy_loop, "rank": part_rank, "rank_mps": part_rank_mps,
         "distill": part_distill, "class_batching": part_class_batching}


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.deadline = Deadline(args.budget_s)
    if args.tiny:
        args.device = "cpu"
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict = {"device": args.device, "tiny": args.tiny, "parts": {}}
    for name in args.parts.split(","):
        started = time.perf_counter()
        try:
            outcome = {"ok": True, **PARTS[name](args)}
        except Exception as exc:  # noqa: BLE001 - record and go on: the other parts still run
            outcome = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                       "where": traceback.format_exc().strip().splitlines()[-3:]}
        outcome["seconds"] = time.perf_counter() - started
        report["parts"][name] = outcome
        print(json.dumps({"part": name, **outcome}), file=sys.stderr, flush=True)  # progress as it goes
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
