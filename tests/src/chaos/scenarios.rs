//! The fault scripts: [`Scenario`], and how each is played on the proxy ([`play`],
//! [`play_stall`], the soak's random sequence).

use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use test_support::Rng;

use super::report::StallReport;
use super::runner::Probe;
use super::{
    Backend, FREEZE, MAX_SIZE, SHUTDOWN_LEAD, SHUTDOWN_WAIT, STALL, STALLED_STARTUPS,
    STARTUP_WINDOW,
};
use crate::proxy::{Direction, FaultProxy};
use crate::sys;

/// The fault scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The server restarts mid-load: every connection is reset and new ones are refused
    /// for 2 s.
    Restart,
    /// Every pooled connection is killed on the server side.
    KillServerSide,
    /// Nothing gets through for 5 s, then it heals: a stall of both directions of every
    /// connection, new ones included (the proxy acknowledges and forwards nothing).
    Blackhole,
    /// One direction of every connection (new ones included) stalls for [`STALL`].
    StallOneWay(Direction),
    /// The connections open when it starts stall both ways for [`STALL`] (a blackhole
    /// after their handshake); new connections flow, so the pool can recover by opening
    /// new ones.
    StallExisting,
    /// Every connection is reset and the next [`STALLED_STARTUPS`] new ones are connected
    /// to the server but get nothing back (their startup never completes), while the
    /// connections after them work; measured for [`STARTUP_WINDOW`].
    StallStartups,
    /// The server processes of the pool's sessions are stopped (SIGSTOP) for [`FREEZE`],
    /// then continued. Only against a server the test started itself.
    FreezeServer,
    /// Every chunk is delayed (each way) for 3 s.
    LatencySpike(Duration),
    /// Faults switch on and off every 500 ms for 4 s (restart, blackhole, cut, latency).
    Flapping,
    /// Opening connections fails for 3 s (accepted, then reset) while half of the open
    /// ones are reset; the other half keep serving.
    CreateFailing,
    /// Mixed faults and load for this long.
    Soak(Duration),
}

impl Scenario {
    /// A short name.
    pub fn name(&self) -> String {
        match self {
            Scenario::Restart => "restart".into(),
            Scenario::KillServerSide => "kill-server-side".into(),
            Scenario::Blackhole => "blackhole-5s".into(),
            Scenario::StallOneWay(Direction::ToServer) => {
                format!("stall-to-server-{}s", STALL.as_secs())
            }
            Scenario::StallOneWay(Direction::ToClient) => {
                format!("stall-to-client-{}s", STALL.as_secs())
            }
            Scenario::StallExisting => format!("stall-existing-{}s", STALL.as_secs()),
            Scenario::StallStartups => format!("stall-startups-{}s", STARTUP_WINDOW.as_secs()),
            Scenario::FreezeServer => format!("freeze-server-{}s", FREEZE.as_secs()),
            Scenario::LatencySpike(d) => format!("latency-spike-{}ms", d.as_millis()),
            Scenario::Flapping => "flapping-500ms".into(),
            Scenario::CreateFailing => "create-failing-3s".into(),
            Scenario::Soak(d) => format!("soak-{}s", d.as_secs()),
        }
    }

    /// For a stall scenario (the network or the server stops delivering, no socket is
    /// closed), how long the stall lasts; `None` for the others.
    pub fn stall_length(&self) -> Option<Duration> {
        match self {
            Scenario::Blackhole => Some(BLACKHOLE),
            Scenario::StallOneWay(_) | Scenario::StallExisting => Some(STALL),
            Scenario::StallStartups => Some(STARTUP_WINDOW),
            Scenario::FreezeServer => Some(FREEZE),
            _ => None,
        }
    }
}

const RESTART_REFUSE: Duration = Duration::from_secs(2);
const BLACKHOLE: Duration = Duration::from_secs(5);
const LATENCY_SPIKE: Duration = Duration::from_secs(3);
pub(super) const FLAP: Duration = Duration::from_millis(500);
const FLAP_CYCLES: u32 = 4;
pub(super) const FLAP_LATENCY: Duration = Duration::from_millis(150);
const CREATE_FAILING: Duration = Duration::from_secs(3);
pub(super) const SOAK_LATENCY: Duration = Duration::from_millis(150);
pub(super) const SOAK_MAX_STALL: Duration = Duration::from_millis(2500);
const SOAK_GAP: Duration = Duration::from_millis(3000);

/// What a fault script plays on (the backend, the pool's proxy, the pool's tag) and what
/// it records on the way.
pub(super) struct Stage<'a, B: Backend> {
    pub(super) backend: &'a B,
    pub(super) proxy: &'a FaultProxy,
    pub(super) tag: &'a str,
    /// Connections killed on the server side.
    pub(super) killed: usize,
    /// When each fault started (the soak's).
    pub(super) fault_starts: Vec<Instant>,
}

/// Plays the fault script of a scenario that is not a stall; returns when each fault was
/// healed.
pub(super) fn play<B: Backend>(scenario: Scenario, stage: &mut Stage<'_, B>) -> Vec<Instant> {
    let (backend, proxy, tag) = (stage.backend, stage.proxy, stage.tag);
    match scenario {
        Scenario::Restart => {
            proxy.set_refuse(true);
            proxy.reset_all();
            thread::sleep(RESTART_REFUSE);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::KillServerSide => {
            stage.killed += backend.kill_server_side(tag, proxy);
            vec![Instant::now()]
        }
        Scenario::LatencySpike(d) => {
            proxy.set_latency(d);
            thread::sleep(LATENCY_SPIKE);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::Flapping => {
            for i in 0..FLAP_CYCLES * 2 {
                match i % 4 {
                    0 => {
                        proxy.set_refuse(true);
                        proxy.reset_all();
                    }
                    1 => proxy.set_blackhole(true),
                    2 => proxy.set_cut_after(Some(2000)),
                    _ => proxy.set_latency(FLAP_LATENCY),
                }
                thread::sleep(FLAP);
                proxy.heal();
                thread::sleep(FLAP);
            }
            vec![Instant::now() - FLAP]
        }
        Scenario::CreateFailing => {
            proxy.set_reject_new(true);
            proxy.reset_some(MAX_SIZE / 2);
            thread::sleep(CREATE_FAILING);
            proxy.heal();
            vec![Instant::now()]
        }
        Scenario::Soak(total) => soak_script(total, stage),
        Scenario::Blackhole
        | Scenario::StallOneWay(_)
        | Scenario::StallExisting
        | Scenario::StallStartups
        | Scenario::FreezeServer => unreachable!("{scenario:?} is a stall: see play_stall"),
    }
}

/// Plays a stall scenario on the pool's proxy and the probe's (or stops the server
/// processes of both pools' sessions); at the end of the stall, while it still holds,
/// times the probe pool's `shutdown_timeout(SHUTDOWN_WAIT)`; then heals. Returns when the
/// stall was in place and when it healed.
pub(super) fn play_stall<B: Backend>(
    scenario: Scenario,
    length: Duration,
    backend: &B,
    proxy: &FaultProxy,
    probe: &Probe<B>,
    tag: &str,
    st: &mut StallReport,
) -> (Instant, Instant) {
    let proxies = [proxy, &probe.proxy];
    let applying = Instant::now();
    let mut stopped = None;
    match scenario {
        Scenario::Blackhole => {
            st.hit = proxy.open();
            st.hit_what = "connections open";
            proxies.iter().for_each(|p| p.set_blackhole(true));
        }
        Scenario::StallOneWay(direction) => {
            st.hit = proxy.open();
            st.hit_what = "connections open";
            proxies.iter().for_each(|p| p.set_stall(direction, true));
        }
        Scenario::StallExisting => {
            st.hit = proxy.stall_existing();
            probe.proxy.stall_existing();
            st.hit_what = "connections stalled";
        }
        Scenario::StallStartups => {
            // The next connections stall; then every open one is reset, so that the pool
            // has to open new ones (the stalled ones first).
            for p in proxies {
                p.stall_next_startups(STALLED_STARTUPS);
                p.reset_all();
            }
            st.hit_what = "startups stalled";
        }
        Scenario::FreezeServer => {
            st.hit_what = "server processes stopped";
            // Sessions come and go (the pool replaces what fails): look again, for up to a
            // second, until some were found and stopped.
            let give_up = Instant::now() + Duration::from_secs(1);
            loop {
                match backend.server_pids(&[tag, &probe.tag]) {
                    Ok(pids) => {
                        let s = sys::Stopped::stop(&pids);
                        st.hit = s.len();
                        stopped = Some(s);
                    }
                    Err(e) => st.error = Some(e),
                }
                if st.hit > 0 || st.error.is_some() || Instant::now() >= give_up {
                    break;
                }
                drop(stopped.take()); // SIGCONT whatever was stopped half-way
                thread::sleep(Duration::from_millis(20));
            }
        }
        _ => unreachable!("{scenario:?} is not a stall"),
    }
    let start = Instant::now();
    st.applying = start - applying;
    let shutdown_at = start + length.saturating_sub(SHUTDOWN_WAIT + SHUTDOWN_LEAD);
    thread::sleep(shutdown_at.saturating_duration_since(Instant::now()));
    let t = Instant::now();
    st.shutdown_clean = probe.pool.shutdown_timeout(SHUTDOWN_WAIT);
    st.shutdown = Some(t.elapsed());
    thread::sleep((start + length).saturating_duration_since(Instant::now()));
    if scenario == Scenario::StallStartups {
        st.hit = proxy.startups_stalled() as usize;
    }
    drop(stopped); // SIGCONT
    proxies.iter().for_each(|p| p.heal());
    (start, Instant::now())
}

/// The seed of the soak's fault sequence: `POOL_SOAK_SEED`, or a fixed one.
pub fn soak_seed() -> u64 {
    std::env::var("POOL_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_c4a0_5eed)
}

/// Mixed faults, each followed by a healthy gap, until `total` is used up (the last
/// fault leaves room for the recovery limit).
fn soak_script<B: Backend>(total: Duration, stage: &mut Stage<'_, B>) -> Vec<Instant> {
    let (backend, proxy, tag) = (stage.backend, stage.proxy, stage.tag);
    let mut rng = Rng::new(soak_seed() ^ backend.name().len() as u64);
    let start = Instant::now();
    let mut heals = Vec::new();
    let ms = |rng: &mut Rng, lo, hi| Duration::from_millis(rng.range(lo, hi));
    let mut log = String::new();
    while start.elapsed() + Duration::from_secs(4) + SOAK_GAP < total {
        let kind = rng.range(0, 6);
        stage.fault_starts.push(Instant::now());
        let _ = write!(log, "{:.1}s:", start.elapsed().as_secs_f64());
        match kind {
            0 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "restart({}ms) ", d.as_millis());
                proxy.set_refuse(true);
                proxy.reset_all();
                thread::sleep(d);
            }
            1 => {
                stage.killed += backend.kill_server_side(tag, proxy);
                let _ = write!(log, "kill ");
            }
            2 => {
                let d = ms(&mut rng, 500, SOAK_MAX_STALL.as_millis() as u64);
                let _ = write!(log, "blackhole({}ms) ", d.as_millis());
                proxy.set_blackhole(true);
                thread::sleep(d);
            }
            3 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "latency({}ms) ", d.as_millis());
                proxy.set_latency(SOAK_LATENCY);
                thread::sleep(d);
            }
            4 => {
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "create-failing({}ms) ", d.as_millis());
                proxy.set_reject_new(true);
                proxy.reset_some(MAX_SIZE / 2);
                thread::sleep(d);
            }
            5 => {
                let bytes = rng.range(200, 5000);
                let d = ms(&mut rng, 500, 2000);
                let _ = write!(log, "cut({bytes}B,{}ms) ", d.as_millis());
                proxy.set_cut_after(Some(bytes));
                thread::sleep(d);
            }
            _ => {
                let _ = write!(log, "flap ");
                for _ in 0..2 {
                    proxy.set_refuse(true);
                    proxy.reset_all();
                    thread::sleep(FLAP);
                    proxy.heal();
                    thread::sleep(FLAP);
                }
            }
        }
        proxy.heal();
        heals.push(Instant::now());
        thread::sleep(SOAK_GAP);
    }
    crate::loud(&format!(
        "   soak {} faults (seed {}): {log}",
        backend.name(),
        soak_seed()
    ));
    heals
}
