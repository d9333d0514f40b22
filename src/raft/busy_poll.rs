//! Polling instead of halting while a write is on its way.
//!
//! A write waits twice: for the disk's `fdatasync` and for a peer's answer. When every thread of
//! the machine waits, its CPUs halt, and waking a halted CPU takes long on a virtual machine
//! (the hypervisor has to schedule the virtual CPU again before it sees the disk's or the
//! network's interrupt). Measured on this project's 2-core VM: an `fdatasync` issued every
//! 0.5 ms took 685 µs at the median with the CPUs otherwise idle and 52 µs back to back; three
//! nodes creating orders for one client did 1 072 per s at 0.93 ms p50, and 1 730 per s at
//! 0.51 ms with two lowest-priority spinning processes beside them (docs/design.md, "Busy
//! polling while a write waits").
//! Go's scheduler spins before it parks a thread, which is how etcd gets this for free.
//!
//! A read-index round waits on peers the same way (`node::read_index`: a quorum's heartbeats,
//! or the leader's answer to a follower's ask), and a leader for a follower's next ask
//! (`read_stream`): those touch the poller too.
//!
//! So one thread per process spins (`std::hint::spin_loop`) while writes are on their way and
//! `linger` after the last one, under `SCHED_IDLE`: it only ever runs on a CPU that nothing else
//! wants, so it costs the node no throughput; between bursts it is parked. `touch` marks
//! activity (a proposal, a log append, an append arriving from the leader): one atomic add, and
//! an unpark only when the poller is parked.
//!
//! `runtime.busy_poll_us` sets `linger`; 0 turns it off. Unset, it is on (1 ms) unless the
//! process runs under a CPU quota (cgroup `cpu.max`), where spinning would spend the quota.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The linger when `runtime.busy_poll_us` is unset and no CPU quota applies.
pub const DEFAULT_LINGER: Duration = Duration::from_millis(1);

static ACTIVITY: AtomicU64 = AtomicU64::new(0);
static PARKED: AtomicBool = AtomicBool::new(false);
static POLLER: OnceLock<std::thread::Thread> = OnceLock::new();

/// A write is on its way: poll for the next `linger`.
#[inline]
pub fn touch() {
    ACTIVITY.fetch_add(1, Ordering::SeqCst);
    if PARKED.load(Ordering::SeqCst) && PARKED.swap(false, Ordering::SeqCst) {
        if let Some(poller) = POLLER.get() {
            poller.unpark();
        }
    }
}

/// How the poller was set up, for the start-up log.
#[derive(Debug, PartialEq, Eq)]
pub enum Started {
    Polling(Duration),
    Off,
    /// Unset, and the process has a CPU quota: off.
    OffUnderQuota(String),
    /// The thread could not lower its priority: off rather than compete with the node.
    OffNoIdlePriority(String),
}

/// Start the process's poller: one per process, shared by the nodes it runs (a node started
/// again in the same process, as in tests, finds it running). `setting`: `runtime.busy_poll_us`
/// (`None`: the default, off under a CPU quota).
pub fn start(setting: Option<Duration>) -> Started {
    let linger = match setting {
        Some(linger) if linger.is_zero() => return Started::Off,
        Some(linger) => linger,
        None => match cpu_quota() {
            Some(quota) => return Started::OffUnderQuota(quota),
            None => DEFAULT_LINGER,
        },
    };
    // Two nodes starting at once in one process must not start two pollers.
    static STARTING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = STARTING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if POLLER.get().is_some() {
        return Started::Polling(linger);
    }
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("busy-poll".into()).spawn(move || {
        let lowered = idle_priority();
        let ok = lowered.is_ok();
        let _ = ready_tx.send(lowered);
        if ok {
            run(linger);
        }
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(e) => return Started::OffNoIdlePriority(format!("cannot start its thread: {e}")),
    };
    match ready_rx.recv() {
        Ok(Ok(())) => {
            let _ = POLLER.set(handle.thread().clone());
            Started::Polling(linger)
        }
        Ok(Err(reason)) => Started::OffNoIdlePriority(reason),
        Err(_) => Started::OffNoIdlePriority("its thread stopped".into()),
    }
}

fn run(linger: Duration) -> ! {
    let mut seen = ACTIVITY.load(Ordering::SeqCst);
    let mut until = Instant::now();
    loop {
        let activity = ACTIVITY.load(Ordering::SeqCst);
        let now = Instant::now();
        if activity != seen {
            seen = activity;
            until = now + linger;
        }
        if now < until {
            for _ in 0..64 {
                std::hint::spin_loop();
            }
            continue;
        }
        PARKED.store(true, Ordering::SeqCst);
        // A touch that came before `PARKED` was set may not have unparked: look once more.
        if ACTIVITY.load(Ordering::SeqCst) != seen {
            PARKED.store(false, Ordering::SeqCst);
            continue;
        }
        std::thread::park();
    }
}

/// `SCHED_IDLE` for the calling thread: it runs only when a CPU has nothing else to do.
#[cfg(target_os = "linux")]
fn idle_priority() -> Result<(), String> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for SCHED_IDLE.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("SCHED_IDLE refused: {}", std::io::Error::last_os_error()))
    }
}

#[cfg(not(target_os = "linux"))]
fn idle_priority() -> Result<(), String> {
    Err("no SCHED_IDLE on this system".into())
}

/// The process's CPU quota, if its cgroup or one above it has one (v2 `cpu.max` along the path
/// in `/proc/self/cgroup`, as systemd's `CPUQuota=` and container limits set it; v1
/// `cpu.cfs_quota_us`).
fn cpu_quota() -> Option<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let v2 = cgroup_v2_path(&own).and_then(|path| {
        ancestors(&path).find_map(|dir| {
            let file = format!("/sys/fs/cgroup{dir}/cpu.max");
            let content = std::fs::read_to_string(&file).ok()?;
            quota_in(Some(&content), None).map(|q| format!("{q} in {file}"))
        })
    });
    v2.or_else(|| quota_in(None, std::fs::read_to_string("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").ok().as_deref()))
}

/// The v2 cgroup path (`0::/system.slice/x.service` → `/system.slice/x.service`).
fn cgroup_v2_path(proc_self_cgroup: &str) -> Option<String> {
    proc_self_cgroup.lines().find_map(|l| l.strip_prefix("0::")).map(|p| p.trim().trim_end_matches('/').to_owned())
}

/// `/a/b` → `/a/b`, `/a`, `` (the root).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]).filter(|_| !p.is_empty()))
}

fn quota_in(v2: Option<&str>, v1: Option<&str>) -> Option<String> {
    if let Some(max) = v2.and_then(|s| s.split_whitespace().next()) {
        if max != "max" {
            return Some(format!("cgroup cpu.max {}", v2.unwrap_or_default().trim()));
        }
    }
    match v1.map(str::trim) {
        Some(q) if q != "-1" && !q.is_empty() => Some(format!("cgroup cpu.cfs_quota_us {q}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_quota_is_read_from_either_cgroup_version() {
        assert_eq!(quota_in(Some("max 100000\n"), None), None);
        assert_eq!(quota_in(Some("50000 100000\n"), None).as_deref(), Some("cgroup cpu.max 50000 100000"));
        assert_eq!(quota_in(None, Some("-1\n")), None);
        assert_eq!(quota_in(None, Some("20000\n")).as_deref(), Some("cgroup cpu.cfs_quota_us 20000"));
        assert_eq!(quota_in(None, None), None);
    }

    #[test]
    fn the_quota_is_looked_for_in_the_processs_own_cgroup_and_every_one_above_it() {
        let path = cgroup_v2_path("0::/system.slice/pizza-orders@node1.service\n").unwrap();
        assert_eq!(path, "/system.slice/pizza-orders@node1.service");
        let all: Vec<&str> = ancestors(&path).collect();
        assert_eq!(all, ["/system.slice/pizza-orders@node1.service", "/system.slice", ""]);
        assert_eq!(cgroup_v2_path("0::/\n").as_deref(), Some(""));
        assert_eq!(ancestors("").collect::<Vec<_>>(), [""]);
        assert_eq!(cgroup_v2_path("12:cpu,cpuacct:/\n"), None);
    }

    #[test]
    fn zero_turns_it_off_and_a_touch_without_a_poller_is_harmless() {
        assert_eq!(start(Some(Duration::ZERO)), Started::Off);
        touch();
    }
}
