#!/usr/bin/env bash
# Measures the figures the core issue asks for, on this machine, with the release build:
#   - memory of an idle logged-in session (RSS growth over N sessions / N),
#   - RETR throughput of the demo's 4 MiB message over loopback (curl, repeated),
#   - peak RSS while a session streams that message (memory must not grow with message size).
# Usage: tests/bench/basics.sh [sessions=200] [retrievals=50]
# Dovecot comparisons live in the performance benchmarks (a later issue); these are absolute figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
SESSIONS=${1:-200}
RETRIEVALS=${2:-50}

cargo build --release -q -p poppet -p poppet-store-maildir -p poppet-auth-passwd
bin="${CARGO_TARGET_DIR:-target}/release/poppet"
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/mail/demo"
cp -r examples/demo/Maildir "$work/mail/demo/Maildir"
cat > "$work/poppet.ron" <<RON
(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "poppet_auth_passwd", kind: auth, name: "passwd", settings: (file: "$PWD/examples/demo/users")),
        (library: "poppet_store_maildir", kind: store, name: "maildir", settings: (path: "$work/mail/%u/Maildir")),
    ],
    auth: "passwd",
    store: "maildir",
    limits: (max_connections_per_ip: 100000, max_connections: 100000),
    logging: (level: "warn"),
)
RON
"$bin" --config "$work/poppet.ron" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$work/out" && break; sleep 0.1; done
addr=$(sed -n 's/^listening on //p' "$work/out" | head -1)
port=${addr##*:}
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

# Idle sessions: N connections, each past the greeting (AUTHORIZATION state, waiting for a command).
base=$(rss)
python3 - "$port" "$SESSIONS" "$pid" <<'PY'
import socket, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port)); s.recv(512); socks.append(s)
rss = int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
print(f"rss_with_{n}_idle_sessions_kib {rss}")
for s in socks: s.close()
PY
echo "rss_base_kib $base"

# RETR throughput of message 4 (4.3 MB) through curl, which dot-unstuffs.
size=$(curl -s "pop3://demo:demo@$addr/" | awk '$1==4 {print $2}')
start=$(date +%s.%N)
for _ in $(seq 1 "$RETRIEVALS"); do curl -s -o /dev/null "pop3://demo:demo@$addr/4"; done
end=$(date +%s.%N)
python3 -c "import sys; s,e,n,b=map(float,sys.argv[1:]); print(f'retr_big_message_bytes {int(b)}'); print(f'retr_throughput_MiB_s {n*b/(e-s)/1048576:.1f} ({int(n)} retrievals, {e-s:.2f}s, includes login per retrieval)')" "$start" "$end" "$RETRIEVALS" "$size"
echo "rss_after_retrievals_kib $(rss)"
echo "peak_rss_kib $(awk '/VmHWM/ {print $2}' /proc/$pid/status)"
