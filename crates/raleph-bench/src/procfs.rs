//! Resource usage of a process (the node, or this benchmark) read from `/proc`: resident
//! memory, CPU time in total and by thread name, and the whole machine's busy time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Clock ticks per second for `/proc/*/stat` CPU times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// `VmRSS` and `VmHWM` in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// `(comm, utime + stime in ticks)` from a `stat` file's text.
pub fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU ticks of a whole process.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, t)| t)
}

/// CPU ticks of each thread of a process: tid → (name, ticks).
pub fn thread_ticks(pid: u32) -> BTreeMap<u32, (String, u64)> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        if let Some(stat) = parse_stat(&text) {
            out.insert(tid, stat);
        }
    }
    out
}

/// Groups per-thread CPU by role. Tokio names its async workers and its blocking pool alike
/// (`tokio-rt-worker`); the workers are started first, so the lowest thread ids are taken to
/// be the async workers (one per core by default) and the rest the blocking pool, which in
/// the node runs signature checks and database reads.
fn group_threads(per_tid: &BTreeMap<u32, (String, f64)>) -> Vec<(String, f64)> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut groups: BTreeMap<String, f64> = BTreeMap::new();
    let mut tokio_seen = 0;
    for (name, pct) in per_tid.values() {
        let group = if name.starts_with("tokio-runtime-w") || name.starts_with("tokio-rt-worker") {
            tokio_seen += 1;
            if tokio_seen <= cores {
                "tokio async workers".to_owned()
            } else {
                "tokio blocking pool".to_owned()
            }
        } else {
            name.clone()
        };
        *groups.entry(group).or_insert(0.0) += pct;
    }
    let mut v: Vec<(String, f64)> = groups.into_iter().filter(|(_, p)| *p >= 0.5).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// `(busy, total)` jiffies of the whole machine from `/proc/stat`.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// A point-in-time reading, to diff at the ends of a phase.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    node: Option<u64>,
    node_threads: BTreeMap<u32, (String, u64)>,
    own: Option<u64>,
    machine: Option<(u64, u64)>,
}

impl Snapshot {
    pub fn take(pid: Option<u32>) -> Self {
        Snapshot {
            at: Instant::now(),
            node: pid.and_then(cpu_ticks),
            node_threads: pid.map(thread_ticks).unwrap_or_default(),
            own: cpu_ticks(std::process::id()),
            machine: machine_ticks(),
        }
    }

    /// CPU use between `self` (earlier) and `later`, in percent of one core.
    pub fn usage_until(&self, later: &Snapshot) -> CpuUsage {
        let wall = later.at.duration_since(self.at).as_secs_f64();
        if wall < 0.5 {
            // Too short for CPU times counted in clock ticks (10 ms) to mean anything.
            return CpuUsage::default();
        }
        let ticks = clock_ticks();
        let pct = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks / wall * 100.0),
            _ => None,
        };
        let per_tid: BTreeMap<u32, (String, f64)> = later
            .node_threads
            .iter()
            .map(|(tid, (name, t))| {
                let before = self.node_threads.get(tid).map_or(0, |(_, b)| *b);
                (
                    *tid,
                    (
                        name.clone(),
                        t.saturating_sub(before) as f64 / ticks / wall * 100.0,
                    ),
                )
            })
            .collect();
        let threads = group_threads(&per_tid);
        let machine = match (self.machine, later.machine) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                // Percent of one core, like the others: busy share × number of cores.
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
                Some((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0 * cores)
            }
            _ => None,
        };
        CpuUsage {
            node: pct(self.node, later.node),
            node_threads: threads,
            own: pct(self.own, later.own),
            machine,
        }
    }
}

/// CPU use over a phase in percent of one core (200 % = both cores of a 2-core machine).
#[derive(Debug, Clone, Default)]
pub struct CpuUsage {
    pub node: Option<f64>,
    /// By thread role, busiest first; threads that ended during the phase are not counted.
    pub node_threads: Vec<(String, f64)>,
    /// This benchmark process.
    pub own: Option<f64>,
    /// The whole machine, other users included.
    pub machine: Option<f64>,
}

impl CpuUsage {
    pub fn describe(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} %"));
        let mut s = format!(
            "node {}, benchmark {}, whole machine {}",
            f(self.node),
            f(self.own),
            f(self.machine)
        );
        if !self.node_threads.is_empty() {
            let parts: Vec<String> = self
                .node_threads
                .iter()
                .map(|(n, p)| format!("{n} {p:.0} %"))
                .collect();
            s.push_str(&format!(" (node threads: {})", parts.join(", ")));
        }
        s
    }
}

/// Samples a process's resident memory in the background and keeps the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    pid: u32,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak_kib.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match memory_kib(pid) {
                    Some((rss, _)) => {
                        p.fetch_max(rss, Ordering::Relaxed);
                    }
                    None => break,
                }
                std::thread::sleep(every);
            }
        });
        RssSampler {
            stop,
            peak_kib,
            pid,
            thread: Some(thread),
        }
    }

    /// Peak sampled RSS and the kernel's high-water mark (`VmHWM`, since the process started).
    pub fn finish(mut self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let now = memory_kib(self.pid);
        let peak = self
            .peak_kib
            .load(Ordering::Relaxed)
            .max(now.map_or(0, |(r, _)| r));
        Memory {
            peak_rss_kib: peak,
            hwm_kib: now.map(|(_, h)| h),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub peak_rss_kib: u64,
    pub hwm_kib: Option<u64>,
}

impl Memory {
    pub fn describe(&self) -> String {
        let mib = |k: u64| k as f64 / 1024.0;
        match self.hwm_kib {
            Some(h) => format!(
                "peak RSS {:.0} MiB sampled (VmHWM {:.0} MiB)",
                mib(self.peak_rss_kib),
                mib(h)
            ),
            None => format!("peak RSS {:.0} MiB sampled", mib(self.peak_rss_kib)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let text = "1234 (tokio runtime) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_stat(text), Some(("tokio runtime".to_owned(), 325)));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let (rss, hwm) = memory_kib(pid).expect("own /proc/self/status");
        assert!(rss > 0 && hwm >= rss / 2);
        assert!(cpu_ticks(pid).is_some());
        assert!(!thread_ticks(pid).is_empty());
    }

    #[test]
    fn groups_tokio_threads_by_role() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut per_tid = BTreeMap::new();
        per_tid.insert(1, ("raleph".to_owned(), 1.0));
        for i in 0..cores + 2 {
            per_tid.insert(10 + i as u32, ("tokio-rt-worker".to_owned(), 10.0));
        }
        per_tid.insert(99, ("raleph-writer".to_owned(), 70.0));
        let g = group_threads(&per_tid);
        assert_eq!(g[0], ("raleph-writer".to_owned(), 70.0));
        assert!(g.contains(&("tokio async workers".to_owned(), 10.0 * cores as f64)));
        assert!(g.contains(&("tokio blocking pool".to_owned(), 20.0)));
    }
}
