#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run the main job on small defaults.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$repo"
d2m-nas --help
