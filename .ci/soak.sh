#!/usr/bin/env bash
# CI's short soak (about 40 s of load plus a 5 s warm-up, after the release build that the
# benchmark smoke run shares): Poppet at a high session rate with random disconnects; fails on RSS
# or descriptor growth, a warning or error in the server log, or an unexpected client error. The
# full run is `tests/soak/soak.sh` (10 minutes by default).
set -euo pipefail
cd "$(dirname "$0")/.."
exec tests/soak/soak.sh --seconds 40 "$@"
