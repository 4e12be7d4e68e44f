"""How far D2M moved its learned latents: for each `distill --latent-pool` run, the mean and the
largest absolute change of the pool from its N(0, I) start (drawn again exactly as the run drew
it, from the run's pre-trained generator and D2M seed), and the pool's RMS. Small changes mean
the pool acted as fixed latents and the weights did the learning. One JSON line per run.

    python benchmarks/latent_drift.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from d2m_nas.generator_files import load_generator
from distill.d2m import D2MConfig, pool_seed
from distill.generator import with_latent_pool


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished d2m-nas distill run directories with a latent pool")
    return p.parse_args(argv)


def latent_drift(run: Path) -> dict:
    learned, _ = load_generator(run)
    if learned.learned_z is None:
        raise SystemExit(f"{run}: no latent pool (distilled without --latent-pool)")
    phase = json.loads((run / "summary.json").read_text())["d2m"]
    settings = phase["settings"]["d2m"]
    if settings.get("latent_init", "normal") != "normal":
        raise SystemExit(f"{run}: the pool started from inverted real images, not N(0, I); its start is the "
                         "generator.pt of the same run with --iterations 0")
    pretrained, _ = load_generator(run, stage="pretrained")
    start = with_latent_pool(pretrained, learned.config.latent_pool, pool_seed(D2MConfig(seed=settings["seed"])))
    change = (learned.learned_z - start.learned_z).detach().abs()
    return {"benchmark": "latent_drift", "run": str(run), "pool": learned.config.latent_pool,
            "latent_lr": settings.get("latent_lr"), "lr": settings["lr"], "iterations": phase["step"],
            "mean_abs_change": float(change.mean()), "max_abs_change": float(change.max()),
            "pool_rms": float(learned.learned_z.detach().pow(2).mean().sqrt())}


def main(argv=None) -> list[dict]:
    rows = [latent_drift(run) for run in parse_args(argv).runs]
    for row in rows:
        print(json.dumps(row))
    return rows


if __name__ == "__main__":
    main()
