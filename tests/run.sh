#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root:
#   installs what the tests need (apt + pip into .venv), then runs pytest.
# Extra arguments go to pytest (e.g. tests/run.sh tests/controlplane -k watch).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash deploy/install.sh --test
# The slowest tests are listed at the end: where the suite's 45-minute budget goes.
exec .venv/bin/python -m pytest -q --durations=40 "${@:-tests}"
