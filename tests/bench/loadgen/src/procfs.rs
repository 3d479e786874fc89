//! CPU time and memory of this process and of a server's process tree, from `/proc`.
//!
//! Dovecot forks a process per login (and per session), Poppet is one process; to compare them the
//! tree under the server's main PID is summed. CPU of children that exited during a measurement is
//! counted through the parent's `cutime`/`cstime` (the parent reaps them), so
//! `tree_cpu(end) - tree_cpu(start)` is the CPU the whole server spent in between.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second in `/proc/*/stat` (`USER_HZ`, 100 on every Linux architecture that
/// matters here).
const TICKS: f64 = 100.0;

/// Fields of `/proc/PID/stat` after the command name, as numbers where they parse.
fn stat_fields(pid: &str) -> Option<Vec<i64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse::<i64>().unwrap_or(0))
            .collect(),
    )
}

// Indexes into `stat_fields` (field number in proc(5) minus 3: state is field 3 -> index 0).
const PPID: usize = 1;
const UTIME: usize = 11;
const STIME: usize = 12;
const CUTIME: usize = 13;
const CSTIME: usize = 14;

/// This process's CPU time (user + system, all threads) in seconds.
pub fn self_cpu() -> f64 {
    stat_fields("self").map_or(0.0, |f| (f[UTIME] + f[STIME]) as f64 / TICKS)
}

/// The PIDs of `root` and all its descendants that are alive now.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Ok(pid) = name.parse::<u32>() else {
                continue;
            };
            if let Some(f) = stat_fields(name) {
                children.entry(f[PPID] as u32).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// CPU seconds (user + system) of the tree under `root`, including reaped children.
pub fn tree_cpu(root: u32) -> f64 {
    tree(root)
        .iter()
        .filter_map(|pid| stat_fields(&pid.to_string()))
        .map(|f| (f[UTIME] + f[STIME] + f[CUTIME] + f[CSTIME]) as f64 / TICKS)
        .sum()
}

/// Memory of a process tree, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// Number of processes summed.
    pub processes: usize,
    /// Sum of resident set sizes (shared pages counted once per process).
    pub rss_kib: u64,
    /// Sum of proportional set sizes (shared pages divided among their users).
    pub pss_kib: u64,
}

/// Sums `Rss` and `Pss` from `/proc/PID/smaps_rollup` over the tree under `root`.
pub fn tree_memory(root: u32) -> Memory {
    let mut m = Memory::default();
    for pid in tree(root) {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
            continue;
        };
        m.processes += 1;
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let key = parts.next();
            let value = parts
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            match key {
                Some("Rss:") => m.rss_kib += value,
                Some("Pss:") => m.pss_kib += value,
                _ => {}
            }
        }
    }
    m
}
