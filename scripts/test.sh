#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run the default test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -m slow` for the integration tests.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$repo"
exec python -m pytest "$@"
