"""Does a second busy core slow this one? What caps `rank --workers 2` below 2x (issue 13).

Runs each kernel for --seconds in one process, then in two processes at once (one torch thread
each, started on one clock), and prints the iterations per second of each, alone and together:
  in-core   a 64x64 fp32 matmul, repeated: 48 KiB of operands, inside each core's own L1/L2
  memory    copying a 256 MiB tensor: bound by the memory bandwidth the cores share
  proxy     one training step of a NAS-Bench-201 cell at the proxy's size (C8/N1, batch 128, SGD
            with momentum; random images): the work `rank --workers` does
If in-core slows down together, the host runs a core slower while its neighbour works (clock
boost, the hypervisor); if it does not and memory and proxy do, the shared L3 and memory
bandwidth are the cap. The steal time of /proc/stat (time the hypervisor gave this machine's
vCPUs to others) is read around every phase. Phases alternate (alone, together, alone, ...) so
drifting load hits both alike; the medians over --repeats are summarised.

    python benchmarks/core_contention.py --seconds 20 --repeats 3
    python benchmarks/core_contention.py --tiny     # 1-second phases, tiny kernels: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNELS = ("in-core", "memory", "proxy")
# NAS-Bench-201's best cell on CIFAR-10, mostly 3x3 convolutions: one of the space's heavier networks
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def make_kernel(name: str, tiny: bool):
    """A function doing one iteration of the kernel (its inputs made once, outside the clock)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    if name == "in-core":
        a, b = torch.randn(64, 64), torch.randn(64, 64)
        return lambda: torch.mm(a, b)
    if name == "memory":
        source = torch.randn((1 << 16) if tiny else (64 << 20))  # 256 MiB of float32
        target = torch.empty_like(source)
        return lambda: target.copy_(source)
    if name == "proxy":
        sys.path.insert(0, str(REPO))
        from search_spaces.registry import create_space

        space = create_space("nasbench201")
        model = space.build(CELL, channels=4 if tiny else 8, cells_per_stage=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        images, labels = torch.randn(8 if tiny else 128, 3, 32, 32), torch.randint(0, 10, (8 if tiny else 128,))
        model.train()

        def step():
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return step
    raise ValueError(f"unknown kernel {name!r}; choose from {', '.join(KERNELS)}")


def worker(kernel: str, start_at: float, seconds: float, tiny: bool) -> dict:
    """Warm up, wait for the shared start, then count iterations for `seconds`."""
    import torch

    torch.set_num_threads(1)
    run = make_kernel(kernel, tiny)
    for _ in range(3):
        run()
    while time.time() < start_at:
        time.sleep(0.001)
    iterations, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        run()
        iterations += 1
    return {"iterations": iterations, "seconds": elapsed}


def steal_ticks() -> tuple[int, int] | None:
    """(steal, all) time of all CPUs in clock ticks since boot (None where /proc/stat is missing)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        total = sum(int(v) for v in fields[1:])
        return int(fields[8]), total
    except (OSError, IndexError, ValueError):
        return None


def phase(kernel: str, processes: int, seconds: float, tiny: bool) -> dict:
    """`processes` copies of the kernel at once; their rates and the steal fraction over the phase."""
    start_at = time.time() + (1.0 if tiny else 8.0)  # after every process has imported torch and warmed up
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, __file__, "--worker", kernel, "--start-at", repr(start_at), "--seconds", str(seconds)]
    before = steal_ticks()
    running = [subprocess.Popen(argv + (["--tiny"] if tiny else []), env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    results = []
    for process in running:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a {kernel} worker failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    after = steal_ticks()
    steal = None
    if before and after and after[1] > before[1]:
        steal = (after[0] - before[0]) / (after[1] - before[1])
    rates = [r["iterations"] / r["seconds"] for r in results]
    return {"kernel": kernel, "processes": processes, "rates": [round(r, 3) for r in rates],
            "mean_rate": statistics.fmean(rates), "steal_fraction": None if steal is None else round(steal, 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kernels", default=",".join(KERNELS), help=f"comma-separated (default: {','.join(KERNELS)})")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default: 20)")
    p.add_argument("--repeats", type=int, default=3, help="alone/together pairs per kernel (default: 3)")
    p.add_argument("--tiny", action="store_true", help="1-second phases of tiny kernels: checks the script only")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.start_at, args.seconds, args.tiny)), flush=True)
        return 0
    seconds, repeats = (1.0, 1) if args.tiny else (args.seconds, args.repeats)
    sys.path.insert(0, str(REPO))
    from d2m_nas.run_dir import cpu_model

    machine = {"cpu": cpu_model(), "cpus": os.cpu_count(), "threads": 1}
    summary = {}
    for kernel in args.kernels.split(","):
        alone, together = [], []
        for _ in range(repeats):
            for processes, rates in ((1, alone), (2, together)):
                row = phase(kernel, processes, seconds, args.tiny)
                rates.append(row["mean_rate"])
                print(json.dumps({**row, "seconds": seconds, **machine}), flush=True)
        ratio = statistics.median(together) / statistics.median(alone)
        summary[kernel] = {"alone_per_s": round(statistics.median(alone), 3),
                           "together_per_s_each": round(statistics.median(together), 3),
                           "per_process_speed_together": round(ratio, 4), "two_process_speedup": round(2 * ratio, 4)}
    print(json.dumps({"summary": True, "seconds": seconds, "repeats": repeats, "kernels": summary, **machine}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
