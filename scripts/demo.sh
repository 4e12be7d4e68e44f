#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run the main job on small defaults, end to end:
#   distill CIFAR-10 into a small generator (a shortened `cpu` preset)
#   -> search NAS-Bench-201 with the D2M proxy (Optuna TPE; each candidate trained briefly on
#      generated images and scored on the real validation split)
#   -> report (correlation-free search summary, true accuracy of the pick) -> plots.
# About 3 minutes on 2 idle CPU cores once installed. Needs CIFAR-10 and the NAS-Bench-201 table under the data root
# ($D2M_NAS_DATA; see README "Data").
#   D2M_NAS_DOWNLOAD=1          download CIFAR-10 into the data root if it is not there
#   D2M_NAS_DEMO_OUT=DIR        where runs go (default runs/demo)
#   D2M_NAS_DEMO_PRETRAIN=N     GAN pre-training steps (default 100; the cpu preset uses 400)
#   D2M_NAS_DEMO_ITERATIONS=N   D2M iterations (default 20; the cpu preset uses 100)
#   D2M_NAS_DEMO_TRIALS=N       architectures the search evaluates (default 12)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$repo"
out="${D2M_NAS_DEMO_OUT:-runs/demo}"
download=()
if [ "${D2M_NAS_DOWNLOAD:-0}" = "1" ]; then
    download=(--download)
    # distill reads the dataset without downloading; fetch it once here
    d2m-nas data --dataset cifar10 --download >/dev/null
fi

if ! d2m-nas distill --dataset cifar10 --preset cpu --pretrain-steps "${D2M_NAS_DEMO_PRETRAIN:-100}" \
        --iterations "${D2M_NAS_DEMO_ITERATIONS:-20}" --out "$out/distill"; then
    echo "demo: distillation failed (see the error above). If CIFAR-10 is missing, put cifar10/cifar10.npz or" \
         "torchvision's CIFAR-10 files under a data root and set D2M_NAS_DATA=DIR, or rerun with" \
         "D2M_NAS_DOWNLOAD=1." >&2
    exit 2
fi
d2m-nas search --space nasbench201 --proxy d2m --generator "$out/distill" --ipc 10 --steps 50 \
    --channels 8 --cells 1 --trials "${D2M_NAS_DEMO_TRIALS:-12}" --ground-truth cifar10:test:200 \
    --out "$out/search"
d2m-nas report "$out/search"
d2m-nas plot "$out/search" "$out/distill" --out "$out/plots"
echo "demo: report in $out/search/report/report.md, figures in $out/plots"
