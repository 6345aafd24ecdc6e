//! The load of the host the control plane runs on (local mode: the Docker host that
//! runs the workspaces), for `workspace_host_cpu_percent` and
//! `workspace_host_memory_percent`: CPU busy time between two scrapes from
//! `/proc/stat`, memory in use from `/proc/meminfo` (`MemTotal - MemAvailable`).
//! On ECS the control plane runs on Fargate, away from the workspace hosts, so these
//! gauges describe only its own task there; host load of the container instances
//! comes from CloudWatch (`CPUUtilization`/`MemoryUtilization` of the ECS cluster).

use std::sync::Mutex;

/// CPU counters of the previous sample: (busy, total) jiffies.
#[derive(Default)]
pub struct HostStats {
    last_cpu: Mutex<Option<(u64, u64)>>,
}

impl HostStats {
    /// (CPU %, memory %) now; CPU is measured since the previous call (the first call
    /// measures since boot). `None` where `/proc` cannot be read.
    pub fn sample(&self) -> Option<(f64, f64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let (busy, total) = parse_cpu(&stat)?;
        let mem = parse_mem_percent(&meminfo)?;
        let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        let (pb, pt) = last.unwrap_or((0, 0));
        *last = Some((busy, total));
        let dt = total.saturating_sub(pt);
        let cpu = if dt == 0 {
            0.0
        } else {
            busy.saturating_sub(pb) as f64 * 100.0 / dt as f64
        };
        Some((cpu, mem))
    }
}

/// Busy and total jiffies of the aggregate `cpu` line.
fn parse_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().take(8).sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

fn parse_mem_percent(meminfo: &str) -> Option<f64> {
    let field = |name: &str| -> Option<f64> {
        let l = meminfo.lines().find(|l| l.starts_with(name))?;
        l.split_whitespace().nth(1)?.parse().ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    (total > 0.0).then(|| (total - avail) * 100.0 / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_formats() {
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(parse_cpu(stat), Some((200, 1000)));
        let mem = "MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n";
        assert_eq!(parse_mem_percent(mem), Some(75.0));
        assert_eq!(parse_cpu("nothing"), None);
    }

    #[test]
    fn this_host_reports_sane_values() {
        let h = HostStats::default();
        let (cpu, mem) = h.sample().expect("/proc is readable on Linux");
        assert!((0.0..=100.0).contains(&cpu), "{cpu}");
        assert!(mem > 0.0 && mem <= 100.0, "{mem}");
    }
}
