//! CPU accounting from /proc: per-core busy time of the machine, on-CPU time of a process (the
//! server) and of the calling thread (raw HSM signing). Linux only, like segl itself.

use std::path::Path;

use serde::Serialize;

/// Cumulative jiffies of one CPU from a `/proc/stat` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CoreTimes {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// All states.
    pub total: u64,
}

/// Cumulative times of every core (`cpu0`, `cpu1`, …), read from `/proc/stat`.
pub fn core_times() -> Vec<CoreTimes> {
    std::fs::read_to_string("/proc/stat").map(|s| parse_proc_stat(&s)).unwrap_or_default()
}

/// Parses the per-core lines of `/proc/stat`.
pub fn parse_proc_stat(text: &str) -> Vec<CoreTimes> {
    text.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal (guest time is inside user).
            let total: u64 = v.iter().take(8).sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            CoreTimes { busy: total.saturating_sub(idle), total }
        })
        .collect()
}

/// Busy fraction of each core between two readings.
pub fn utilisation(before: &[CoreTimes], after: &[CoreTimes]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| {
            let total = a.total.saturating_sub(b.total);
            if total == 0 {
                0.0
            } else {
                a.busy.saturating_sub(b.busy) as f64 / total as f64
            }
        })
        .collect()
}

/// On-CPU nanoseconds of every thread of process `pid` (sum of `schedstat` run times), or
/// `None` when the process is gone. Its threads live as long as it does, so nothing is lost
/// to exited threads.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut sum = 0;
    for t in tasks.flatten() {
        sum += schedstat_ns(&t.path().join("schedstat")).unwrap_or(0);
    }
    Some(sum)
}

/// User and system time of process `pid` (all its threads), nanoseconds, from
/// `/proc/<pid>/stat`; `None` when the process is gone.
pub fn process_user_system_ns(pid: u32) -> Option<(u64, u64)> {
    parse_user_system_ns(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Nanoseconds per clock tick of `/proc/<pid>/stat`: USER_HZ is 100 on every Linux
/// architecture (it is ABI, whatever the kernel's own HZ).
const NS_PER_TICK: u64 = 10_000_000;

/// utime and stime of a `/proc/<pid>/stat` line, nanoseconds.
pub fn parse_user_system_ns(stat: &str) -> Option<(u64, u64)> {
    // The command name may hold spaces and parentheses; the fields after its last `)` start
    // with field 3 (state), so utime (14) and stime (15) are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime * NS_PER_TICK, stime * NS_PER_TICK))
}

/// On-CPU nanoseconds of the calling thread.
pub fn thread_cpu_ns() -> Option<u64> {
    schedstat_ns(Path::new("/proc/thread-self/schedstat"))
}

fn schedstat_ns(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.split_whitespace().next()?.parse().ok()
}

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct MachineInfo {
    /// Host name.
    pub hostname: String,
    /// CPU model.
    pub cpu_model: String,
    /// Logical CPUs the report could use (its affinity: all of the machine's unless pinned).
    pub cpus: usize,
    /// Logical CPUs of the machine (0 in older reports, which were never pinned).
    #[serde(default)]
    pub machine_cpus: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// `/proc/loadavg` when the description was taken: other work on a shared machine shows here.
    #[serde(default)]
    pub load_average: String,
}

impl MachineInfo {
    /// Reads the description of this machine.
    pub fn detect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory_kib: f64 = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        MachineInfo {
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            cpu_model,
            cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            machine_cpus: cpuinfo.lines().filter(|l| l.starts_with("processor")).count(),
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            load_average: read("/proc/loadavg").split_whitespace().take(3).collect::<Vec<_>>().join(" "),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_lines_give_busy_and_total() {
        let text =
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 5 1 4 40 2 1 1 0 0 0\ncpu1 1 0 1 100 0 0 0 0 0 0\nintr 1\n";
        let t = parse_proc_stat(text);
        assert_eq!(t, vec![CoreTimes { busy: 12, total: 54 }, CoreTimes { busy: 2, total: 102 }]);
        let later = vec![CoreTimes { busy: 62, total: 154 }, CoreTimes { busy: 2, total: 202 }];
        assert_eq!(utilisation(&t, &later), vec![0.5, 0.0]);
    }

    #[test]
    fn user_and_system_time_come_from_fields_14_and_15() {
        let stat = "4242 (segl (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 731 42 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_user_system_ns(stat), Some((7_310_000_000, 420_000_000)));
        assert_eq!(parse_user_system_ns("1 (x) S 1"), None);
        assert!(process_user_system_ns(std::process::id()).is_some());
    }

    #[test]
    fn this_thread_has_cpu_time() {
        let before = thread_cpu_ns().expect("schedstat readable");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns().expect("schedstat readable") > before);
        assert!(process_cpu_ns(std::process::id()).is_some_and(|ns| ns > 0));
    }
}
