//! Process gauges from `/proc/self` (resident memory and threads), and stopping other
//! processes for a while ([`Stopped`]).

use std::time::{Duration, Instant};

/// Loads, once per process, what printing a backtrace loads: the debug information of this
/// binary, parsed and cached by the standard library for the rest of the process's life.
///
/// Call it before taking an RSS baseline. With `RUST_BACKTRACE` set (CI sets it), the first
/// backtrace printed in a process (a panic in a server thread of the test infrastructure, a
/// leak warning) parses the debug information of the whole test binary: about 100 MiB of
/// resident memory that stays for good and would read as a leak of the run that printed it.
pub fn warm_backtrace_cache() {
    static WARM: std::sync::Once = std::sync::Once::new();
    WARM.call_once(|| {
        let trace = std::backtrace::Backtrace::force_capture();
        // Formatting resolves the symbols: that is what loads the cache.
        let text = trace.to_string();
        std::hint::black_box(text);
    });
}

/// Resident set size in KiB (`VmRSS` in `/proc/self/status`), 0 if unknown.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Threads of this process (`/proc/self/task`), not counting those whose name starts with
/// one of `exclude` (test infrastructure such as the HTTP server, `cx-httpd`).
///
/// Threads inherit their creator's name on Linux unless they set one, so everything an
/// infrastructure thread spawns carries its prefix too.
pub fn threads_excluding(exclude: &[&str]) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let comm = comm.trim_end();
            !exclude.iter().any(|p| comm.starts_with(p))
        })
        .count()
}

/// Names of this process's threads (for a report when the count is off).
pub fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut names: Vec<String> = dir
        .filter_map(Result::ok)
        .map(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .unwrap_or_default()
                .trim_end()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

/// Waits up to `limit` for `threads_excluding(exclude) <= target`; returns the last count.
pub fn wait_threads_at_most(target: usize, exclude: &[&str], limit: Duration) -> usize {
    let end = Instant::now() + limit;
    loop {
        let n = threads_excluding(exclude);
        if n <= target || Instant::now() >= end {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Processes stopped with `SIGSTOP` (a server that stops answering without closing a
/// socket), continued with `SIGCONT` when this is dropped: on success, failure and panic
/// alike. Signals are sent with one `kill(1)` for all of them (no `unsafe` needed here),
/// and each process's state is read back from `/proc`.
pub struct Stopped {
    pids: Vec<u32>,
    stopped: usize,
}

/// How long [`Stopped::stop`] waits for the processes to show as stopped.
const STOP_CONFIRM: Duration = Duration::from_secs(2);

impl Stopped {
    /// Stops `pids` and waits (up to 2 s, `STOP_CONFIRM`) until `/proc` shows each one
    /// stopped or gone.
    pub fn stop(pids: &[u32]) -> Stopped {
        let mut s = Stopped {
            pids: pids.to_vec(),
            stopped: 0,
        };
        // A process that ended meanwhile makes `kill` fail for it alone.
        signal(pids, "STOP");
        let end = Instant::now() + STOP_CONFIRM;
        loop {
            let states: Vec<Option<char>> = pids.iter().map(|&p| process_state(p)).collect();
            s.stopped = states.iter().filter(|st| **st == Some('T')).count();
            if states.iter().all(|st| matches!(st, Some('T') | None)) || Instant::now() >= end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// How many processes showed as stopped.
    pub fn len(&self) -> usize {
        self.stopped
    }

    /// Whether none did.
    pub fn is_empty(&self) -> bool {
        self.stopped == 0
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(&self.pids, "CONT");
    }
}

/// `kill -<signal> <pids>` (whether it could run at all; a pid that is gone makes it fail
/// after signalling the others).
fn signal(pids: &[u32], signal: &str) -> bool {
    if pids.is_empty() {
        return true;
    }
    std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok()
}

/// A process's state letter from `/proc/<pid>/stat` (`T`: stopped), `None` if it is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) S ...`: the state follows the last `)` (comm may contain anything).
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}
