#!/usr/bin/env bash
# Soak: Poppet under a high session rate with random disconnects for minutes, watching for leaks.
#
# Usage:
#   tests/soak/soak.sh [--minutes N] [--seconds N] [--concurrency N] [--disconnect R] [--keep]
#
#   --minutes N      how long the load runs (default 10); --seconds N for shorter runs (CI).
#   --concurrency N  sessions at once (default 32).
#   --disconnect R   fraction of sessions dropped at a random step: before the greeting, after
#                    USER, with PASS unanswered, mid-LIST, mid-RETR, after a DELE (default 0.3).
#   --keep           keep the work directory (config, server log, samples).
#
# The load generator (tests/bench/loadgen, `session --retr --disconnect R`) runs full sessions
# (USER/PASS, STAT, LIST, UIDL, RETR of every message, QUIT) against one Poppet (release build,
# maildir store, passwd-file auth) on loopback. After a warm-up (a tenth of the run, at least 5 s:
# allocator arenas, the blocking thread pool and caches reach their working size) the server's RSS
# (/proc/PID/status VmRSS) and open descriptors (/proc/PID/fd) are sampled; again every 10 s, and
# at the end once the load has stopped and the server has closed its sessions. It fails when
# - RSS grew by more than RSS_SLACK_MB (default 16 MiB) from the post-warm-up sample;
# - the server holds more descriptors at the end than after the warm-up (plus FD_SLACK, 2);
# - the server log has a WARN or ERROR line (it runs at `warn`; a client that goes away is not
#   worth a warning; the one startup warning about running as root on loopback is expected), or
#   the server died;
# - the generator saw an error other than a dropped session of its own or `[IN-USE]` (a mailbox
#   whose dropped session the server has not closed yet: the POP3 lock working).
# Needs: cargo, bash, coreutils, python3. Exit status 0 on success, 1 on a failed check.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

DURATION=600
CONC=32
DISCONNECT=0.3
KEEP=0
RSS_SLACK_MB=${RSS_SLACK_MB:-16}
FD_SLACK=${FD_SLACK:-2}
while [ $# -gt 0 ]; do
    case $1 in
        --minutes) DURATION=$(($2 * 60)); shift ;;
        --seconds) DURATION=$2; shift ;;
        --concurrency) CONC=$2; shift ;;
        --disconnect) DISCONNECT=$2; shift ;;
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
WARMUP=$((DURATION / 10)); [ "$WARMUP" -lt 5 ] && WARMUP=5
SAMPLE_EVERY=10

log() { printf '== soak: %s\n' "$*" >&2; }
fail() { printf 'soak: FAILED: %s\n' "$*" >&2; FAILED=1; }
FAILED=0

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building Poppet and the load generator (release) in $CARGO_TARGET_DIR"
cargo build --release -q -p poppet -p poppet-store-maildir -p poppet-auth-passwd -p poppet-loadgen
BIN=$CARGO_TARGET_DIR/release
LG=$BIN/poppet-loadgen

W=$(mktemp -d "${TMPDIR:-/tmp}/poppet-soak.XXXXXX")
SERVER=
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    if [ "$KEEP" = 1 ]; then echo "work directory kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT

# Four mailboxes per concurrent session, so a thread moves on after each session (loadgen rotates
# users with --disconnect) and a dropped session's lock is rarely still held at the next login.
USERS=$((CONC * 4))
"$LG" maildir --dir "$W/home/u{}/Maildir" --users "$USERS" --count 5 --size 4096 >/dev/null
for ((k = 0; k < USERS; k++)); do
    # {PLAIN}: the soak is about sessions, not about hashing passwords.
    echo "u$k:{PLAIN}soak::::$W/home/u$k::"
done > "$W/users"
PORT=$("$LG" free-port)
cat > "$W/poppet.ron" <<RON
(
    listeners: [(address: "127.0.0.1:$PORT")],
    plugin_dir: "$BIN",
    plugins: [
        (library: "poppet_auth_passwd", kind: auth, name: "passwd", settings: (file: "$W/users")),
        (library: "poppet_store_maildir", kind: store, name: "maildir", settings: (mark_seen: false)),
    ],
    auth: "passwd",
    store: "maildir",
    limits: (
        max_connections: $((CONC * 4 + 100)),
        max_connections_per_ip: $((CONC * 4 + 100)),
    ),
    logging: (level: "warn"),
)
RON

"$BIN/poppet" --config "$W/poppet.ron" > "$W/poppet.out" 2> "$W/poppet.log" &
SERVER=$!
for _ in $(seq 1 100); do
    grep -q "listening on" "$W/poppet.out" 2>/dev/null && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$W/poppet.log" >&2; echo "soak: Poppet did not start" >&2; exit 1; }
    sleep 0.1
done
grep -q "listening on" "$W/poppet.out" || { echo "soak: Poppet did not start" >&2; exit 1; }

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER/status"; }
fds() { find "/proc/$SERVER/fd" -mindepth 1 -maxdepth 1 | wc -l; }
sample() { printf '%s t=%ss rss_kb=%s fds=%s\n' "$1" "$(( $(date +%s) - T0 ))" "$(rss_kb)" "$(fds)" | tee -a "$W/samples.txt" >&2; }

load() { # load SECONDS
    "$LG" session --addr "127.0.0.1:$PORT" --password soak --users "$USERS" \
        --concurrency "$CONC" --duration "$1" --retr --disconnect "$DISCONNECT" \
        --server-pid "$SERVER" --label soak
}

T0=$(date +%s)
IDLE_FDS=$(fds)
log "warm-up ${WARMUP}s, then ${DURATION}s at concurrency $CONC with ${DISCONNECT} of the sessions dropped"
load "$WARMUP" > "$W/warmup.json"
# The warm-up's sessions are closed once the descriptor count is back to idle (bounded wait).
for _ in $(seq 1 100); do [ "$(fds)" -le "$IDLE_FDS" ] && break; sleep 0.1; done
sample start
START_RSS=$(rss_kb); START_FDS=$(fds)

load "$DURATION" > "$W/load.json" &
LOAD=$!
while kill -0 "$LOAD" 2>/dev/null; do
    sleep "$SAMPLE_EVERY"
    kill -0 "$SERVER" 2>/dev/null || break
    kill -0 "$LOAD" 2>/dev/null && sample during
done
wait "$LOAD" || fail "the load generator failed"

if ! kill -0 "$SERVER" 2>/dev/null; then
    fail "the server died"
    SERVER=
else
    # Sessions end when the server sees their sockets close: wait (bounded) for the count to settle.
    for _ in $(seq 1 100); do [ "$(fds)" -le $((START_FDS + FD_SLACK)) ] && break; sleep 0.1; done
    sample end
    END_RSS=$(rss_kb); END_FDS=$(fds)
    GROWTH_KB=$((END_RSS - START_RSS))
    log "RSS ${START_RSS} -> ${END_RSS} kB (${GROWTH_KB} kB), descriptors ${START_FDS} -> ${END_FDS}"
    [ "$GROWTH_KB" -le $((RSS_SLACK_MB * 1024)) ] \
        || fail "RSS grew by ${GROWTH_KB} kB (bound ${RSS_SLACK_MB} MiB)"
    [ "$END_FDS" -le $((START_FDS + FD_SLACK)) ] \
        || fail "descriptors grew from $START_FDS to $END_FDS (open: $(ls -l "/proc/$SERVER/fd" | tail -n +2 | awk '{print $NF}' | sort | uniq -c | sort -rn | head -5 | tr '\n' ';'))"
fi

cat "$W/load.json" >&2
python3 - "$W/load.json" <<'PY' || fail "the load generator saw errors (see first_error above)"
import json, sys
v = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"soak: {v['sessions']} sessions completed, {v['dropped']} dropped on purpose, "
      f"{v['in_use']} IN-USE, {v['errors']} errors, {v['sessions_per_s']} sessions/s", file=sys.stderr)
sys.exit(1 if v["errors"] or v["sessions"] == 0 else 0)
PY
# Expected: the one startup warning about running as root on loopback (CI runs as root).
unexpected() { grep -E ' (WARN|ERROR) ' "$W/poppet.log" | grep -v 'running as root on loopback only'; }
if unexpected >/dev/null; then
    fail "the server logged warnings or errors:"
    unexpected | sed -E 's/^\[[^]]*Z //' | sort | uniq -c | sort -rn | head -20 >&2
fi
[ "$FAILED" = 0 ] && log "passed"
exit "$FAILED"
