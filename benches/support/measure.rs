//! Measuring: `/proc` sampling of the daemon (VmRSS, CPU), this process's CPU, the machine's load
//! average, and the statistics the benches print (percentiles, rates).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);
/// Longest the bench waits for a quiet machine when `BENCH_MAX_LOAD` is set.
pub const LOAD_WAIT: Duration = Duration::from_secs(300);

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn read_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of a process, in seconds.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// CPU seconds used by this process (load generator, and receiver where there is one).
pub fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU use of the daemon and of this process over an interval, in cores.
pub struct CpuMeter {
    pid: u32,
    start: Instant,
    daemon: f64,
    me: f64,
}

#[derive(Clone, Copy, Default)]
pub struct CpuUse {
    pub daemon_cores: f64,
    pub bench_cores: f64,
}

impl CpuMeter {
    pub fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            start: Instant::now(),
            daemon: process_cpu_secs(pid).unwrap_or(0.0),
            me: self_cpu_secs(),
        }
    }

    pub fn finish(&self) -> CpuUse {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        CpuUse {
            daemon_cores: (process_cpu_secs(self.pid).unwrap_or(0.0) - self.daemon) / wall,
            bench_cores: (self_cpu_secs() - self.me) / wall,
        }
    }
}

impl CpuUse {
    pub fn line(&self) -> String {
        format!(
            "CPU: daemon {:.2} cores, bench process (receiver + load generator) {:.2} cores",
            self.daemon_cores, self.bench_cores
        )
    }
}

/// Samples the daemon's VmRSS every [`RSS_SAMPLE_EVERY`], keeping the overall peak and the peak
/// since the last [`RssSampler::take_phase_peak`].
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    phase_peak_kib: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let phase_peak_kib = Arc::new(AtomicU64::new(0));
        let (s, p, pp) = (stop.clone(), peak_kib.clone(), phase_peak_kib.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                let Some(kib) = read_status_kib(pid, "VmRSS:") else {
                    break;
                };
                p.fetch_max(kib, Ordering::AcqRel);
                pp.fetch_max(kib, Ordering::AcqRel);
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
        });
        RssSampler {
            stop,
            peak_kib,
            phase_peak_kib,
            handle: Some(handle),
        }
    }

    pub fn reset_phase(&self) {
        self.phase_peak_kib.store(0, Ordering::Release);
    }

    pub fn take_phase_peak(&self) -> u64 {
        self.phase_peak_kib.swap(0, Ordering::AcqRel)
    }

    /// Stops sampling; returns the overall peak in KiB.
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak_kib.load(Ordering::Acquire)
    }
}

// ---------------------------------------------------------------------------------------------
// Machine load

/// The 1-, 5- and 15-minute load averages (None if /proc/loadavg is unreadable).
pub type LoadAvg = Option<(f64, f64, f64)>;

/// Reads the load averages from /proc/loadavg.
pub fn loadavg() -> LoadAvg {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

pub fn fmt_load(l: LoadAvg) -> String {
    l.map_or("n/a".into(), |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}"))
}

pub fn print_load() -> LoadAvg {
    let l = loadavg();
    println!("  load average (1/5/15 min): {}", fmt_load(l));
    l
}

/// With `BENCH_MAX_LOAD=X`, waits (at most [`LOAD_WAIT`]) until the 1-minute load is below X.
pub fn wait_for_quiet_machine() {
    let Some(max) = std::env::var("BENCH_MAX_LOAD")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
    else {
        return;
    };
    let start = Instant::now();
    loop {
        let now = loadavg().map_or(0.0, |l| l.0);
        if now < max {
            println!(
                "1-minute load {now:.2} < {max} after {:.0} s of waiting",
                start.elapsed().as_secs_f64()
            );
            return;
        }
        if start.elapsed() > LOAD_WAIT {
            println!("1-minute load still {now:.2} ≥ {max} after {LOAD_WAIT:?}; running anyway");
            return;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics

pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// [`percentile`] of µs samples, in ms.
pub fn pct_ms(sorted: &[u32], p: f64) -> Option<f64> {
    percentile(sorted, p).map(|us| f64::from(us) / 1000.0)
}

pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
