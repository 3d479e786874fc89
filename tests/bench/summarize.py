#!/usr/bin/env python3
"""Summarizes compare.sh's results.jsonl: medians per server and workload, ratios Poppet/Dovecot
(min/median/max over rounds), and the issue-9 targets. Writes summary.json and summary.md into the
output directory and prints the markdown table.

Usage: summarize.py RESULTS.jsonl OUTDIR MACHINE DOVECOT_VERSION COMMIT SMOKE(0|1)
In smoke mode it exits non-zero when any measurement had errors or measured nothing.
"""
import json
import statistics
import sys
from collections import defaultdict

results_path, out_dir, machine, dovecot_version, commit, smoke = sys.argv[1:7]
smoke = smoke == "1"
rows = [json.loads(l) for l in open(results_path) if l.strip()]

# workload -> (metric, unit, higher_is_better)
def metric_of(w):
    if w.startswith("session") or w.startswith("tls_session"):
        return "sessions_per_s", "sessions/s", True
    if w.endswith("retr_small"):
        return "messages_per_s", "messages/s", True
    if "retr_" in w:
        return "mib_per_s", "MiB/s", True
    if w.startswith("open_"):
        return "open_ms", "ms", False
    if w.startswith("idle_"):
        return "pss_per_conn_kib", "KiB PSS/conn", False
    return None, None, True


def target_of(w):
    """(description, check(ratio, poppet_median, ceiling_median) -> bool) or None."""
    if w == "session_c64":
        return ">= 10x", lambda r, p, c: r >= 10
    if w in ("retr_b1", "retr_b2"):
        return ">= 4x and >= 1/2 ceiling", lambda r, p, c: r >= 4 and (c is None or p >= c / 2)
    if w == "retr_small":
        return ">= 4x", lambda r, p, c: r >= 4
    if w.startswith("open_m100000_warm"):
        return "<= 1/3", lambda r, p, c: r <= 1 / 3
    if w.startswith("open_m100000_cold"):
        return "<= 1x", lambda r, p, c: r <= 1
    if w.startswith("idle_"):
        return "<= 1/20", lambda r, p, c: r <= 1 / 20
    return None


by = defaultdict(lambda: defaultdict(dict))  # workload -> server -> round -> row
for r in rows:
    by[r["workload"]][r["server"]][r["round"]] = r

failures = []
for r in rows:
    if r.get("errors", 0) or ("sessions" in r and r["sessions"] == 0) or (
        "bytes" in r and r["bytes"] == 0
    ):
        failures.append(f'{r["server"]} {r["workload"]} round {r["round"]}: '
                        f'errors={r.get("errors")} {r.get("first_error", "")}')


def order(w):
    groups = ["session_c", "session_plain", "retr_", "tls_session", "tls_retr", "open_", "idle_"]
    g = next((i for i, p in enumerate(groups) if w.startswith(p)), 99)
    num = "".join(ch for ch in w if ch.isdigit())
    return (g, int(num) if num else 0, w)


def ceiling_of(workload, metric):
    """The median of a ceiling recorded under another workload's name, or None."""
    vals = [r[metric] for r in by.get(workload, {}).get("ceiling", {}).values() if metric in r]
    return (statistics.median(vals) or None) if vals else None


summary = {"machine": machine, "dovecot": dovecot_version, "commit": commit, "workloads": {}}
lines = [
    "| workload | unit | Poppet | Dovecot | Poppet/Dovecot min / median / max | target | met | "
    "server CPU ms/unit P / D | loadgen CPU % |",
    "|---|---|---:|---:|---|---|---|---|---:|",
]
for w in sorted(by, key=order):
    if w.startswith("retr_") and "ceiling" in by[w] and len(by[w]) == 1:
        continue
    metric, unit, higher = metric_of(w)
    if metric is None:
        continue
    per_server = by[w]
    med = {}
    cpu = {}
    for s, rounds in per_server.items():
        vals = [r[metric] for r in rounds.values() if r.get(metric) is not None]
        if vals:
            med[s] = statistics.median(vals)
        cpus = [r["server_cpu_per_unit_ms"] for r in rounds.values() if "server_cpu_per_unit_ms" in r]
        if cpus:
            cpu[s] = statistics.median(cpus)
    ratios = []
    if "poppet" in per_server and "dovecot" in per_server:
        for rnd, pr in per_server["poppet"].items():
            dr = per_server["dovecot"].get(rnd)
            if dr and dr.get(metric) and pr.get(metric) is not None:
                ratios.append(pr[metric] / dr[metric])
    ceiling = med.get("ceiling")
    if ceiling is None and w.startswith("tls_retr_b"):
        ceiling = ceiling_of(w[4:], metric)  # the same file's copy, measured without TLS
    hash_ceiling = False
    if ceiling is None and (w.startswith("session_c") or w.startswith("tls_session_c")):
        # SHA512-CRYPT sessions: the hash ceiling (checks per second on every CPU, nothing else).
        ceiling = ceiling_of("hash_ceiling", metric)
        hash_ceiling = ceiling is not None
    t = target_of(w)
    entry = {"metric": metric, "unit": unit, "higher_is_better": higher, "median": med,
             "server_cpu_per_unit_ms": cpu}
    rtext = "-"
    met = "-"
    if ratios:
        rmin, rmed, rmax = min(ratios), statistics.median(ratios), max(ratios)
        entry["ratio"] = {"min": rmin, "median": rmed, "max": rmax, "rounds": len(ratios)}
        rtext = f"{rmin:.3g} / **{rmed:.3g}** / {rmax:.3g}"
        if t:
            ok = t[1](rmed, med.get("poppet", 0), ceiling)
            met = "yes" if ok else "**no**"
            entry["target"] = {"want": t[0], "met": ok}
    if ceiling:
        entry["ceiling"] = ceiling
    if ceiling and "poppet" in med:
        entry["poppet_over_ceiling"] = med["poppet"] / ceiling
    if hash_ceiling and med.get("dovecot"):
        # What the hash alone allows against this Dovecot: below the target, no server checking it
        # with one SHA-512 stream per login could meet it.
        entry["ceiling_over_dovecot"] = ceiling / med["dovecot"]
        if met == "**no**" and t and not t[1](ceiling / med["dovecot"], ceiling, None):
            met += f" (hash ceiling {ceiling / med['dovecot']:.3g}x)"
    loadgen = [r["loadgen_cpu_pct"] for s in ("poppet", "dovecot") for r in per_server.get(s, {}).values()
               if "loadgen_cpu_pct" in r and r.get("elapsed_s", 0) >= 0.5]  # 10 ms ticks: short runs are noise
    summary["workloads"][w] = entry
    fmt = lambda x: "-" if x is None else (f"{x:.4g}" if isinstance(x, float) else str(x))
    name = w
    if ceiling and "poppet" in med:
        kind = "hash ceiling" if hash_ceiling else "ceiling"
        name += f" ({kind} {ceiling:.0f} {unit}; Poppet {100 * med['poppet'] / ceiling:.0f}% of it)"
    lines.append(
        f"| {name} | {unit} | {fmt(med.get('poppet'))} | {fmt(med.get('dovecot'))} | {rtext} | "
        f"{t[0] if t else ''} | {met} | {fmt(cpu.get('poppet'))} / {fmt(cpu.get('dovecot'))} | "
        f"{fmt(max(loadgen)) if loadgen else '-'} |"
    )

# Marginal memory per idle connection between the two largest counts (fixed costs of a fresh
# server, such as thread pools and the first plugin use, cancel out).
idle_counts = sorted(int(w[5:]) for w in by if w.startswith("idle_") and w[5:].isdigit())
if len(idle_counts) >= 2:
    lo, hi = idle_counts[-2], idle_counts[-1]
    marg = {}
    for s in ("poppet", "dovecot"):
        a = [r["pss_after_kib"] for r in by[f"idle_{lo}"].get(s, {}).values() if "pss_after_kib" in r]
        b = [r["pss_after_kib"] for r in by[f"idle_{hi}"].get(s, {}).values() if "pss_after_kib" in r]
        n_lo = statistics.median([r["connections"] for r in by[f"idle_{lo}"].get(s, {}).values()] or [lo])
        n_hi = statistics.median([r["connections"] for r in by[f"idle_{hi}"].get(s, {}).values()] or [hi])
        if a and b and n_hi > n_lo:
            marg[s] = (statistics.median(b) - statistics.median(a)) / (n_hi - n_lo)
    if marg:
        w = f"idle_marginal_{lo}_to_{hi}"
        r = marg["poppet"] / marg["dovecot"] if "poppet" in marg and marg.get("dovecot") else None
        summary["workloads"][w] = {"metric": "pss_kib_per_conn", "median": marg, "ratio": r}
        fmt2 = lambda x: "-" if x is None else f"{x:.4g}"
        ok = "-" if r is None else ("yes" if r <= 1 / 20 else "**no**")
        lines.append(f"| {w} (PSS growth / connections) | KiB PSS/conn | {fmt2(marg.get('poppet'))} | "
                     f"{fmt2(marg.get('dovecot'))} | {fmt2(r)} (medians) | <= 1/20 | {ok} | | |")

header = (f"Machine: {machine}. Dovecot {dovecot_version}. Poppet commit {commit}. "
          f"Rounds: {max((r['round'] for r in rows), default=0)}. Medians over rounds; "
          "ratio = Poppet/Dovecot per round (min / median / max). loadgen CPU % is the "
          "generator's own CPU (100 = one core), highest over the runs.")
md = header + "\n\n" + "\n".join(lines) + "\n"
if failures:
    md += "\nErrors:\n" + "\n".join(f"- {f}" for f in failures) + "\n"
summary["failures"] = failures
with open(f"{out_dir}/summary.json", "w") as f:
    json.dump(summary, f, indent=1)
with open(f"{out_dir}/summary.md", "w") as f:
    f.write(md)
print(md)
if smoke and failures:
    print("smoke run FAILED: some measurement had errors", file=sys.stderr)
    sys.exit(1)
