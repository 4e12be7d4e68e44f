#!/usr/bin/env bash
# Create .venv (once) and install d2m-nas with the tested dependency set. Safe to re-run: pip
# skips what is already satisfied. Sourced by scripts/test.sh and scripts/demo.sh.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${D2M_NAS_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
stamp="$venv/.d2m-nas-installed"
# Reinstall only when the install inputs change: keeps repeated test runs fast.
want="$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$repo/constraints.txt" -e "$repo[nni,postgres,test,timm]"
    echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
# The shared data beside a checkout (this workplace, CI) is the default data root when nothing else is set.
if [ -z "${D2M_NAS_DATA:-}" ] && [ -d "$repo/../shared/data" ]; then
    export D2M_NAS_DATA="$(cd "$repo/../shared/data" && pwd)"
fi
