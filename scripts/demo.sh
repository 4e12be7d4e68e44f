#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run the main job on small defaults: a random real CIFAR-10
# subset at IPC 10 (the first baseline), evaluated with ConvNet-3 under a reduced protocol
# (fewer epochs and runs, so it finishes in a few minutes on 2 CPU cores).
#   D2M_NAS_DOWNLOAD=1        download CIFAR-10 into the data root if it is not there
#   D2M_NAS_DEMO_EPOCHS=N     training epochs (default 100; the field's protocol is 1000)
#   D2M_NAS_DEMO_RUNS=N       training runs (default 2)
#   D2M_NAS_DEMO_OUT=DIR      where results go (default runs/demo)
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$repo"
out="${D2M_NAS_DEMO_OUT:-runs/demo}"
download=()
if [ "${D2M_NAS_DOWNLOAD:-0}" = "1" ]; then
    download=(--download)
fi

if ! d2m-nas generate --method random --dataset cifar10 --ipc 10 --seed 0 "${download[@]}" --out "$out/random-ipc10"; then
    echo "demo: could not read CIFAR-10 (see the error above). Put cifar10/cifar10.npz or torchvision's" \
         "CIFAR-10 files under a data root and set D2M_NAS_DATA=DIR, or rerun with D2M_NAS_DOWNLOAD=1" \
         "to download it there." >&2
    exit 2
fi
d2m-nas evaluate "$out/random-ipc10" --epochs "${D2M_NAS_DEMO_EPOCHS:-100}" --runs "${D2M_NAS_DEMO_RUNS:-2}" \
    "${download[@]}" --out "$out/eval"
echo "demo: synthetic set in $out/random-ipc10/synthetic.pt, results in $out/eval/eval.json"
