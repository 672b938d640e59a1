//! The machine's stalls: how long each core was lost to whatever this machine does not
//! control, measured while a fixed-rate run goes on, and which of the run's slow requests
//! fell in their wake.
//!
//! One probe thread per core, pinned to it, at the lowest real-time priority (`SCHED_FIFO`
//! 1, where the bench may set it: above every ordinary thread of the server, PostgreSQL and
//! the load generator, so none of them delays it), sleeps 1 ms at a time while a run is
//! watched. A wake-up that comes 1 ms or more late means the core ran nothing of this
//! machine's choosing meanwhile: the hypervisor had taken it (steal), or the kernel ran
//! something that cannot be preempted. On this shared host (2026-12-03) an idle machine's
//! probe woke 5–16 ms late 18 times a minute over its two cores, while `/proc/stat` counted
//! under 0.2% steal; at half a read's capacity the other core then has exactly the load
//! the two had, so requests queue until the lost core comes back and again while the
//! backlog drains.
//!
//! A stall's *shadow* is the stall and as long again after it, that drain: a request due in
//! one waited for the stall, however little it cost. The report counts a run's requests over
//! its goal that were due in a shadow, and the p99 of the requests due outside every shadow:
//! what the server gave where the machine kept its cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A wake-up this much late or more counts as a stall.
pub const LATE: Duration = Duration::from_millis(1);
/// How long a probe thread sleeps between wake-ups while a run is watched.
const TICK: Duration = Duration::from_millis(1);
/// How often an idle probe thread looks whether a run began.
const IDLE: Duration = Duration::from_millis(10);
/// The stalls counted in a run's report: this long or longer.
pub const COUNTED: Duration = Duration::from_millis(2);

/// A core lost for `length` from `start`.
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    pub start: Instant,
    pub length: Duration,
}

impl Stall {
    /// The stall and as long again after it.
    fn shadows(&self, at: Instant) -> bool {
        at >= self.start && at < self.start + self.length * 2
    }
}

struct Shared {
    watching: AtomicUsize,
    stalls: Mutex<Vec<Stall>>,
    realtime: AtomicUsize,
    ready: AtomicUsize,
}

/// The probe threads; they live as long as the process.
pub struct StallProbe {
    shared: Arc<Shared>,
    cores: usize,
}

/// While it lives, the probe threads are awake; dropped, they idle again.
pub struct Watch(Arc<Shared>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.watching.fetch_sub(1, Ordering::SeqCst);
    }
}

impl StallProbe {
    /// Starts one probe thread for each of `cores` cores (idle until [`StallProbe::watch`]);
    /// `None` but on Linux.
    pub fn start(cores: usize) -> Option<Self> {
        if cfg!(not(target_os = "linux")) {
            return None;
        }
        let shared = Arc::new(Shared {
            watching: AtomicUsize::new(0),
            stalls: Mutex::new(Vec::new()),
            realtime: AtomicUsize::new(0),
            ready: AtomicUsize::new(0),
        });
        for core in 0..cores {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("stall-probe-{core}"))
                .spawn(move || probe(core, &shared))
                .ok()?;
        }
        let since = Instant::now();
        while shared.ready.load(Ordering::SeqCst) < cores
            && since.elapsed() < Duration::from_secs(1)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        Some(Self { shared, cores })
    }

    /// Wakes the probe threads until the guard is dropped.
    pub fn watch(&self) -> Watch {
        self.shared.watching.fetch_add(1, Ordering::SeqCst);
        Watch(self.shared.clone())
    }

    /// Whether every probe thread runs at real-time priority (it does where the bench may
    /// set it: as root, or with `CAP_SYS_NICE`); if not, a probe's wake-up can also wait for
    /// this machine's own threads, and its stalls say less.
    pub fn realtime(&self) -> bool {
        self.shared.realtime.load(Ordering::SeqCst) == self.cores
    }

    /// The stalls that began from `from` to `to`.
    pub fn between(&self, from: Instant, to: Instant) -> Vec<Stall> {
        self.shared
            .stalls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|stall| stall.start >= from && stall.start < to)
            .copied()
            .collect()
    }
}

fn probe(core: usize, shared: &Shared) {
    if pin(core) && realtime() {
        shared.realtime.fetch_add(1, Ordering::SeqCst);
    }
    shared.ready.fetch_add(1, Ordering::SeqCst);
    // Whether the last tick was watched: the first tick after an idle spell can find the
    // thread just moved back onto its core, so stalls count from the second.
    let mut awake = false;
    loop {
        if shared.watching.load(Ordering::Relaxed) == 0 {
            awake = false;
            std::thread::sleep(IDLE);
            continue;
        }
        let due = Instant::now() + TICK;
        std::thread::sleep(TICK);
        let late = Instant::now().saturating_duration_since(due);
        if late >= LATE && awake {
            shared
                .stalls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Stall {
                    start: due,
                    length: late,
                });
        }
        awake = true;
    }
}

/// Pins this thread to `core`.
#[cfg(not(target_os = "linux"))]
fn pin(_core: usize) -> bool {
    false
}

/// Puts this thread at `SCHED_FIFO` priority 1; false where the bench may not.
#[cfg(not(target_os = "linux"))]
fn realtime() -> bool {
    false
}

/// Pins this thread to `core`.
#[cfg(target_os = "linux")]
fn pin(core: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    if core >= rustix::thread::CpuSet::MAX_CPU {
        return false;
    }
    set.set(core);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// Puts this thread at `SCHED_FIFO` priority 1; false where the bench may not.
#[cfg(target_os = "linux")]
fn realtime() -> bool {
    fifo(1)
}

/// Puts this thread at `SCHED_FIFO` `priority`; false where the bench may not.
#[cfg(target_os = "linux")]
fn fifo(priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: sets this thread's (0) policy from a parameter that lives through the call and
    // is only read by it.
    #[allow(unsafe_code)]
    let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    set == 0
}

/// A fixed-rate run's requests against the machine's stalls in it.
#[derive(Debug, PartialEq)]
pub struct StallReport {
    /// Stalls of [`COUNTED`] or longer.
    pub counted: usize,
    /// The longest stall, ms.
    pub longest_ms: f64,
    /// Requests slower than the goal.
    pub slow: usize,
    /// Of them, those due in a stall's shadow.
    pub slow_in_shadow: usize,
    /// The share of the run's length in shadows, percent.
    pub shadow_share: f64,
    /// The p99 of the requests due outside every shadow, ms (`NaN` if there are none).
    pub p99_outside_ms: f64,
}

impl StallReport {
    /// `timeline`: each answered request's due time from `started` and its latency;
    /// `stalls`: those of the run; `elapsed`: the run's length; `goal`: the latency over which
    /// a request counts as slow.
    pub fn new(
        started: Instant,
        elapsed: Duration,
        timeline: &[(Duration, Duration)],
        stalls: &[Stall],
        goal: Duration,
    ) -> Self {
        let shadowed = |due: Duration| stalls.iter().any(|stall| stall.shadows(started + due));
        let (mut slow, mut slow_in_shadow, mut outside) = (0, 0, Vec::new());
        for (due, latency) in timeline {
            let in_shadow = shadowed(*due);
            if *latency > goal {
                slow += 1;
                slow_in_shadow += usize::from(in_shadow);
            }
            if !in_shadow {
                outside.push(*latency);
            }
        }
        outside.sort_unstable();
        let p99_outside_ms = crate::percentile_ms(&outside, 0.99);
        // The shadows' union over the run, walked in order of start.
        let end = started + elapsed;
        let mut spans: Vec<(Instant, Instant)> = stalls
            .iter()
            .map(|stall| {
                (
                    stall.start.max(started),
                    (stall.start + stall.length * 2).min(end),
                )
            })
            .filter(|(from, to)| from < to)
            .collect();
        spans.sort_unstable();
        let (mut covered, mut reach) = (Duration::ZERO, started);
        for (from, to) in spans {
            let from = from.max(reach);
            if to > from {
                covered += to - from;
                reach = to;
            }
        }
        Self {
            counted: stalls.iter().filter(|s| s.length >= COUNTED).count(),
            longest_ms: stalls
                .iter()
                .map(|s| s.length.as_secs_f64() * 1000.0)
                .fold(0.0, f64::max),
            slow,
            slow_in_shadow,
            shadow_share: covered.as_secs_f64() / elapsed.as_secs_f64().max(1e-9) * 100.0,
            p99_outside_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_slow_requests_due_in_a_stall_or_its_drain_are_told_apart_from_the_rest() {
        let started = Instant::now();
        // One request a millisecond for a second, each 1 ms, but those due in the 10 ms
        // stall at 500 ms and the 10 ms after it, which waited for it, and one slow request
        // at 900 ms that no stall explains.
        let timeline: Vec<(Duration, Duration)> = (0..1000)
            .map(|n| {
                let latency = match n {
                    500..520 => ms(530 - n),
                    900 => ms(40),
                    _ => ms(1),
                };
                (ms(n), latency)
            })
            .collect();
        let stalls = [
            Stall {
                start: started + ms(500),
                length: ms(10),
            },
            // Under COUNTED: in the shadows, not in the count.
            Stall {
                start: started + ms(100),
                length: Duration::from_micros(1500),
            },
        ];
        let report = StallReport::new(started, ms(1000), &timeline, &stalls, ms(5));
        assert_eq!(report.counted, 1);
        assert_eq!(report.longest_ms, 10.0);
        // 500..520 took 30 down to 11 ms, all due in the stall's shadow; 900 did not.
        assert_eq!(report.slow, 21);
        assert_eq!(report.slow_in_shadow, 20);
        assert!((report.shadow_share - 2.3).abs() < 1e-9, "{report:?}");
        // 977 requests outside the shadows, one of them 40 ms: the p99 is 1 ms.
        assert_eq!(report.p99_outside_ms, 1.0);
    }

    #[test]
    fn a_run_without_stalls_has_every_request_outside_a_shadow() {
        let started = Instant::now();
        let timeline: Vec<(Duration, Duration)> = (0..100).map(|n| (ms(n), ms(n))).collect();
        let report = StallReport::new(started, ms(100), &timeline, &[], ms(5));
        assert_eq!(report.counted, 0);
        assert_eq!(report.slow, 94);
        assert_eq!(report.slow_in_shadow, 0);
        assert_eq!(report.shadow_share, 0.0);
        assert_eq!(report.p99_outside_ms, 98.0);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_core_taken_from_a_watched_probe_is_a_stall_of_about_that_length() {
        let probe = StallProbe::start(1).expect("a probe thread");
        if !probe.realtime() {
            // Nothing of this process can then take the core from the probe for sure.
            eprintln!("skipped: the probe may not run at real-time priority here");
            return;
        }
        let _watch = probe.watch();
        std::thread::sleep(ms(20));
        // A thread above the probe's priority on the probe's core, busy for 30 ms.
        let before = Instant::now();
        std::thread::spawn(|| {
            assert!(pin(0) && fifo(2));
            let busy = Instant::now();
            while busy.elapsed() < ms(30) {
                std::hint::spin_loop();
            }
        })
        .join()
        .unwrap();
        std::thread::sleep(ms(20));
        let stalls = probe.between(before, Instant::now());
        let longest = stalls.iter().map(|stall| stall.length).max();
        assert!(
            longest.is_some_and(|length| length >= ms(25)),
            "the 30 ms the core was taken: {stalls:?}"
        );
    }
}
