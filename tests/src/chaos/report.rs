//! What a run reports: [`Report`] (and a stall scenario's [`StallReport`]), the rules it
//! is checked against ([`Report::violations`]), the printed figures, and [`check`].

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::{
    DEADLINE_SLACK, MAX_SIZE, OP_TIMEOUT, RECOVERY_LIMIT, RECOVERY_TARGET, RSS_TOLERANCE_KIB,
    SHUTDOWN_WAIT, THREADS, WAIT_TIMEOUT,
};

/// What one run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// `backend/scenario`.
    pub label: String,
    /// Calls that succeeded.
    pub succeeded: u64,
    /// Calls that failed with a typed error, by kind.
    pub failed: BTreeMap<String, u64>,
    /// Calls still running long after the stop.
    pub hung: usize,
    /// Calls that panicked.
    pub panicked: u64,
    /// Calls that returned after their budget + 1 s.
    pub late: u64,
    /// The slowest call.
    pub slowest: Duration,
    /// A call's budget + grace: no call may take longer.
    pub call_limit: Duration,
    /// The slowest `acquire`, and how many returned after [`WAIT_TIMEOUT`] +
    /// [`DEADLINE_SLACK`].
    pub acquire_max: Duration,
    pub acquire_over: u64,
    /// The slowest request (the backend's operation on an acquired connection, release not
    /// included), and how many returned after [`OP_TIMEOUT`] + [`DEADLINE_SLACK`].
    pub op_max: Duration,
    pub op_over: u64,
    /// The slowest release (the connection's return to the pool: its reset and checks).
    pub release_max: Duration,
    /// Whether requests are bounded on the client ([`Backend::client_side_timeout`](super::Backend::client_side_timeout)).
    pub op_bounded: bool,
    /// Most connections open at the server, sampled by the monitor: the clients' sockets
    /// connected to the proxy, as the kernel sees them (asserted; see
    /// [`OpenCounter::kernel`](crate::proxy::OpenCounter::kernel)).
    pub max_open_sampled: usize,
    /// The same from the proxy threads' own counter, sampled (lags a client's close while
    /// a pump holds a delayed chunk, so it is printed, not asserted).
    pub max_open_proxy_sampled: usize,
    /// Most connections open at once by the proxy's counter at accept time (as above).
    pub max_open_proxy: usize,
    /// Most connections the pool said it had open (sampled).
    pub max_open_pool: usize,
    /// Connections the proxy accepted.
    pub accepted: u64,
    /// Connections killed on the server side (kill scenario).
    pub killed: usize,
    /// Successful calls per second before the fault.
    pub baseline_per_sec: f64,
    /// Time from each heal to full throughput (None: not within the time it had).
    pub recoveries: Vec<Option<Duration>>,
    /// RSS before and after, KiB.
    pub rss_kib: (u64, u64),
    /// Threads before and after (HTTP server threads not counted).
    pub threads: (usize, usize),
    /// Thread names left over, when the count did not come back.
    pub leftover_threads: Vec<String>,
    /// Pool statistics at the end of the load.
    pub pool_stats: String,
    /// Notes (limitations that applied).
    pub notes: Vec<String>,
    /// Whether resources were measured.
    pub measured: bool,
    /// Stall scenarios: what else they measured.
    pub stall: Option<StallReport>,
}

/// What a stall scenario measured on top of the common figures.
#[derive(Debug, Clone, Default)]
pub struct StallReport {
    /// How long the stall lasted.
    pub length: Duration,
    /// How long the probe pool's `shutdown_timeout(SHUTDOWN_WAIT)`, called at the end of
    /// the stall, took (None: it was not called), and whether it closed everything.
    pub shutdown: Option<Duration>,
    pub shutdown_clean: bool,
    /// Probe clients still running well after the stop.
    pub probe_hung: usize,
    /// The server's sessions of the pool under test (None: it cannot list them).
    pub sessions: Option<Sessions>,
    /// Calls that succeeded from the start of the stall to the heal.
    pub ok_during: u64,
    /// What full throughput would have done in that time (the reference the recovery is
    /// measured against: the warm-up's, or the last second's if the machine slowed down).
    pub ok_baseline: f64,
    /// The least calls that must succeed during the stall, if the scenario has such a rule
    /// (stalled startups: [`STARTUP_MIN_SHARE`](super::STARTUP_MIN_SHARE) of `ok_baseline`).
    pub ok_required: Option<f64>,
    /// What the stall hit (connections stalled, startups stalled, processes stopped), and
    /// what that count is of; 0 means the scenario tested nothing.
    pub hit: usize,
    pub hit_what: &'static str,
    /// Why the stall could not be applied, if it could not.
    pub error: Option<String>,
    /// How long applying it took (stopping processes is not instant).
    pub applying: Duration,
}

/// The server's own list of the pool's sessions, sampled every 50 ms (`SESSION_SAMPLE`).
#[derive(Debug, Clone, Default)]
pub struct Sessions {
    /// Most sessions listed at once.
    pub max_listed: usize,
    /// Most of them at once whose client (the pool, through the proxy) still had its
    /// socket open; the others had left, and a stall or a stopped process kept the server
    /// from learning it yet. Asserted: at most `max_size`.
    pub max_held: usize,
    /// Successful samples.
    pub samples: u64,
    /// Failed samples, and the last failure.
    pub errors: u64,
    pub last_error: Option<String>,
}

impl Report {
    /// Total failed calls.
    pub fn failed_total(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The rules this run broke (empty: all good).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        let l = &self.label;
        if self.succeeded == 0 {
            v.push(format!("{l}: no call succeeded"));
        }
        if self.hung > 0 {
            v.push(format!("{l}: {} calls hung", self.hung));
        }
        if self.panicked > 0 {
            v.push(format!("{l}: {} calls panicked", self.panicked));
        }
        if self.late > 0 {
            v.push(format!(
                "{l}: {} calls returned after {:?} (slowest {:?})",
                self.late, self.call_limit, self.slowest
            ));
        }
        if self.max_open_sampled > MAX_SIZE {
            v.push(format!(
                "{l}: {} connections open at the server (max_size {MAX_SIZE})",
                self.max_open_sampled
            ));
        }
        if self.max_open_pool > MAX_SIZE {
            v.push(format!(
                "{l}: the pool reported {} open (max_size {MAX_SIZE})",
                self.max_open_pool
            ));
        }
        if let Some(st) = &self.stall {
            v.extend(self.stall_violations(st));
        }
        match self.recoveries.last() {
            Some(Some(d)) if *d <= RECOVERY_LIMIT => {}
            Some(Some(d)) => v.push(format!("{l}: full throughput only {d:?} after heal")),
            Some(None) => v.push(format!(
                "{l}: throughput did not come back within {RECOVERY_LIMIT:?} of the heal"
            )),
            None => {}
        }
        if self.measured {
            if self.threads.1 > self.threads.0 {
                v.push(format!(
                    "{l}: {} threads after the pool was dropped, {} before: {:?}",
                    self.threads.1, self.threads.0, self.leftover_threads
                ));
            }
            if self.rss_kib.1 > self.rss_kib.0 + RSS_TOLERANCE_KIB {
                v.push(format!(
                    "{l}: RSS grew from {} KiB to {} KiB",
                    self.rss_kib.0, self.rss_kib.1
                ));
            }
        }
        v
    }

    /// The stall scenarios' own rules.
    fn stall_violations(&self, st: &StallReport) -> Vec<String> {
        let mut v = Vec::new();
        let l = &self.label;
        if let Some(e) = &st.error {
            v.push(format!("{l}: the stall could not be applied: {e}"));
        } else if st.hit == 0 {
            v.push(format!("{l}: the stall hit nothing (0 {})", st.hit_what));
        }
        if self.acquire_over > 0 {
            v.push(format!(
                "{l}: {} acquires returned after {:?} + {DEADLINE_SLACK:?} (slowest {:?})",
                self.acquire_over, WAIT_TIMEOUT, self.acquire_max
            ));
        }
        if self.op_bounded && self.op_over > 0 {
            v.push(format!(
                "{l}: {} requests returned after their {:?} timeout + {DEADLINE_SLACK:?} \
                 (slowest {:?})",
                self.op_over, OP_TIMEOUT, self.op_max
            ));
        }
        match st.shutdown {
            Some(d) if d > SHUTDOWN_WAIT + DEADLINE_SLACK => v.push(format!(
                "{l}: shutdown_timeout({SHUTDOWN_WAIT:?}) took {d:?} during the stall"
            )),
            Some(_) => {}
            None => v.push(format!("{l}: shutdown_timeout was not timed")),
        }
        if st.probe_hung > 0 {
            v.push(format!("{l}: {} probe clients hung", st.probe_hung));
        }
        if let Some(s) = &st.sessions {
            if s.samples == 0 {
                v.push(format!(
                    "{l}: the server's sessions were never listed ({} errors, last: {})",
                    s.errors,
                    s.last_error.as_deref().unwrap_or("-")
                ));
            }
            if s.max_held > MAX_SIZE {
                v.push(format!(
                    "{l}: the server had {} sessions of the pool with their client connected \
                     (max_size {MAX_SIZE})",
                    s.max_held
                ));
            }
        }
        if let Some(want) = st.ok_required {
            if (st.ok_during as f64) < want {
                v.push(format!(
                    "{l}: only {} calls succeeded in the {:?} of the stall (wanted {want:.0}, \
                     {:.0} % of the baseline's)",
                    st.ok_during,
                    st.length,
                    want * 100.0 / st.ok_baseline.max(1.0)
                ));
            }
        }
        v
    }
}

/// The stall scenarios' figures, one table line each (empty when there are none).
pub fn stall_table(reports: &[Report]) -> String {
    let rows: Vec<(&Report, &StallReport)> = reports
        .iter()
        .filter_map(|r| r.stall.as_ref().map(|s| (r, s)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let secs = |d: Duration| format!("{:.3}", d.as_secs_f64());
    let mut t = String::new();
    let _ = writeln!(
        t,
        "== stall figures (seconds). Rules: acquire <= {:.2}; request <= {:.2} when bounded on \
         the client (* = not bounded: not asserted); shutdown_timeout({}) <= {:.2} at the end of \
         the stall; connections at the server <= {MAX_SIZE} (proxy sockets, pool, sessions the \
         server lists with their client connected / all it lists); heal to full throughput: \
         target {}, rule <= {}",
        (WAIT_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
        (OP_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
        SHUTDOWN_WAIT.as_secs_f64(),
        (SHUTDOWN_WAIT + DEADLINE_SLACK).as_secs_f64(),
        RECOVERY_TARGET.as_secs_f64(),
        RECOVERY_LIMIT.as_secs_f64(),
    );
    let _ = writeln!(
        t,
        "   {:<30} {:>8} {:>9} {:>8} {:>9}  {:<18} {:>16} {:>6}  hit",
        "scenario",
        "acquire",
        "request",
        "release",
        "shutdown",
        "server max",
        "ok in stall",
        "heal",
    );
    for (r, s) in rows {
        let request = format!("{}{}", secs(r.op_max), if r.op_bounded { "" } else { "*" });
        let shutdown = s.shutdown.map_or("-".into(), |d| {
            format!("{}{}", secs(d), if s.shutdown_clean { "" } else { "!" })
        });
        let sessions = s
            .sessions
            .as_ref()
            .map_or("-".into(), |x| format!("{}/{}", x.max_held, x.max_listed));
        let server = format!("{} {} {}", r.max_open_sampled, r.max_open_pool, sessions);
        let share = if s.ok_baseline > 0.0 {
            format!("{:.0} %", s.ok_during as f64 * 100.0 / s.ok_baseline)
        } else {
            "-".into()
        };
        let heal = match r.recoveries.last() {
            Some(Some(d)) => format!("{:.2}", d.as_secs_f64()),
            _ => "never".into(),
        };
        let _ = writeln!(
            t,
            "   {:<30} {:>8} {:>9} {:>8} {:>9}  {:<18} {:>9} {:>6} {:>6}  {} {}",
            r.label,
            secs(r.acquire_max),
            request,
            secs(r.release_max),
            shutdown,
            server,
            s.ok_during,
            share,
            heal,
            s.hit,
            s.hit_what
        );
    }
    let _ = writeln!(
        t,
        "   (shutdown: ! = not everything was closed in time, as expected with requests stuck \
         in the stall)"
    );
    t
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let recov: Vec<String> = self
            .recoveries
            .iter()
            .map(|r| match r {
                Some(d) => format!("{:.2} s", d.as_secs_f64()),
                None => "not measured (next fault came first)".into(),
            })
            .collect();
        writeln!(
            f,
            "== chaos {}: {THREADS} threads, max_size {MAX_SIZE}",
            self.label
        )?;
        writeln!(
            f,
            "   requests: {} succeeded, {} failed with a typed error, {} hung, {} panicked",
            self.succeeded,
            self.failed_total(),
            self.hung,
            self.panicked
        )?;
        if !failed.is_empty() {
            writeln!(f, "   failures: {}", failed.join(", "))?;
        }
        writeln!(
            f,
            "   slowest call {:.3} s (limit {:.1} s, late {})",
            self.slowest.as_secs_f64(),
            self.call_limit.as_secs_f64(),
            self.late
        )?;
        writeln!(
            f,
            "   slowest acquire {:.3} s ({} past {:.2} s), request {:.3} s ({} past {:.2} s{}), \
             release {:.3} s",
            self.acquire_max.as_secs_f64(),
            self.acquire_over,
            (WAIT_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
            self.op_max.as_secs_f64(),
            self.op_over,
            (OP_TIMEOUT + DEADLINE_SLACK).as_secs_f64(),
            if self.op_bounded {
                ""
            } else {
                "; not bounded on the client"
            },
            self.release_max.as_secs_f64()
        )?;
        writeln!(
            f,
            "   open at the server: max {} sampled (proxy counter {} sampled, {} at accept; pool {}), {} accepted{}",
            self.max_open_sampled,
            self.max_open_proxy_sampled,
            self.max_open_proxy,
            self.max_open_pool,
            self.accepted,
            if self.killed > 0 {
                format!(", {} killed server-side", self.killed)
            } else {
                String::new()
            }
        )?;
        writeln!(
            f,
            "   baseline {:.0} calls/s; heal to full throughput: {}",
            self.baseline_per_sec,
            recov.join(", ")
        )?;
        if self.measured {
            writeln!(
                f,
                "   RSS {:.1} -> {:.1} MiB; threads {} -> {}",
                self.rss_kib.0 as f64 / 1024.0,
                self.rss_kib.1 as f64 / 1024.0,
                self.threads.0,
                self.threads.1
            )?;
        }
        if let Some(st) = &self.stall {
            let share = if st.ok_baseline > 0.0 {
                st.ok_during as f64 * 100.0 / st.ok_baseline
            } else {
                0.0
            };
            writeln!(
                f,
                "   stall {:.1} s: hit {} {}; {} calls succeeded during it ({share:.0} % of \
                 the baseline's)",
                st.length.as_secs_f64(),
                st.hit,
                st.hit_what,
                st.ok_during
            )?;
            if let Some(e) = &st.error {
                writeln!(f, "   stall not applied: {e}")?;
            }
            match st.shutdown {
                Some(d) => writeln!(
                    f,
                    "   probe pool: shutdown_timeout({SHUTDOWN_WAIT:?}) at the end of the stall \
                     returned in {:.3} s ({}); {} probe clients hung",
                    d.as_secs_f64(),
                    if st.shutdown_clean {
                        "everything closed"
                    } else {
                        "not everything closed"
                    },
                    st.probe_hung
                )?,
                None => writeln!(f, "   probe pool: not shut down")?,
            }
            if let Some(s) = &st.sessions {
                writeln!(
                    f,
                    "   server sessions: max {} with their client connected, {} listed ({} \
                     samples, {} errors{})",
                    s.max_held,
                    s.max_listed,
                    s.samples,
                    s.errors,
                    s.last_error
                        .as_ref()
                        .map(|e| format!(", last: {e}"))
                        .unwrap_or_default()
                )?;
            }
        }
        for n in &self.notes {
            writeln!(f, "   note: {n}")?;
        }
        Ok(())
    }
}

/// Prints every report (bypassing output capture) and panics listing every violation.
pub fn check(reports: &[Report]) {
    let mut all = Vec::new();
    for r in reports {
        crate::loud(&r.to_string());
        let v = r.violations();
        if !v.is_empty() {
            crate::loud(&format!("   pool statistics at the end:\n{}", r.pool_stats));
        }
        all.extend(v);
    }
    let table = stall_table(reports);
    if !table.is_empty() {
        crate::loud(&table);
    }
    assert!(all.is_empty(), "chaos violations:\n  {}", all.join("\n  "));
}
