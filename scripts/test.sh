#!/usr/bin/env bash
# Set up (scripts/bootstrap.sh) and run the default test suite. Extra arguments go to pytest,
# e.g. `bash scripts/test.sh -k rank` for the rank tests.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/bootstrap.sh"
cd "$repo"
# A throwaway PostgreSQL on loopback for the multi-worker search test (installed from Debian's
# packages when run as root; the test skips, saying why, if no server starts).
if [ -z "${D2M_NAS_TEST_POSTGRES_URL:-}" ]; then
    if url="$(bash "$repo/scripts/postgres.sh")"; then
        export D2M_NAS_TEST_POSTGRES_URL="$url"
        trap 'bash "$repo/scripts/postgres.sh" stop' EXIT
    else
        echo "test.sh: PostgreSQL did not start; its search test will skip" >&2
    fi
fi
python -m pytest "$@"
