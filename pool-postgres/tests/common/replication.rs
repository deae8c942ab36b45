//! A throwaway primary and two streaming standbys of it, for the pool-set tests and the
//! `replicas` benchmark, with the moves those need: stop and start a standby, pause its
//! replay (lag while the primary keeps writing), promote one, stop the primary.
//!
//! The three are clusters of our own ([`Cluster`]: `initdb`, then `pg_basebackup -R` for
//! the standbys, both taken at once), never the shared server on 5432. Each is stopped and
//! its directory removed on drop, and a watcher does the same if the process dies first.

use std::path::Path;
use std::time::{Duration, Instant};

use super::services::{self, Cluster};

/// How long a standby may take to be streaming (and in recovery) after it starts.
pub const STREAMING_LIMIT: Duration = Duration::from_secs(30);

/// A primary and two standbys streaming from it.
pub struct Replication {
    /// The primary (until a promotion, the only member that accepts writes).
    pub primary: Cluster,
    /// The two standbys.
    pub standbys: [Cluster; 2],
}

impl Replication {
    /// Starts a primary on `ports[0]` and standbys on `ports[1]` and `ports[2]` (or free
    /// ports where those are taken), and waits until both standbys stream.
    pub fn start(bindir: &Path, ports: [u16; 3]) -> Replication {
        let t0 = Instant::now();
        let primary = Cluster::primary(bindir, ports[0]);
        // Both base backups at once: each takes two WAL senders of the primary's ten.
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| Cluster::standby_of(&primary, ports[1]));
            let b = s.spawn(|| Cluster::standby_of(&primary, ports[2]));
            (a.join(), b.join())
        });
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => std::panic::resume_unwind(e),
        };
        let r = Replication {
            primary,
            standbys: [a, b],
        };
        for i in 0..2 {
            r.wait_streaming(i);
        }
        eprintln!(
            "replication: primary on {}, standbys on {} and {} (ready in {:?})",
            r.primary.port,
            r.standbys[0].port,
            r.standbys[1].port,
            t0.elapsed()
        );
        r
    }

    /// Waits until standby `i` is in recovery and its WAL receiver streams; panics with
    /// its log after [`STREAMING_LIMIT`].
    pub fn wait_streaming(&self, i: usize) {
        let standby = &self.standbys[i];
        let streaming = services::wait_until(STREAMING_LIMIT, || {
            let Ok(mut c) = postgres::Client::connect(&standby.url(), postgres::NoTls) else {
                return false;
            };
            c.query_one(
                "SELECT pg_is_in_recovery() AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver \
                 WHERE status = 'streaming')",
                &[],
            )
            .map(|r| r.get::<_, bool>(0))
            .unwrap_or(false)
        });
        assert!(
            streaming,
            "standby {i} not streaming; log:\n{}",
            standby.log()
        );
    }

    /// The three servers' ports: primary, standby 0, standby 1.
    pub fn ports(&self) -> [u16; 3] {
        [
            self.primary.port,
            self.standbys[0].port,
            self.standbys[1].port,
        ]
    }

    /// Stops standby `i` (`pg_ctl stop -m immediate`: its clients' sockets close at once).
    pub fn stop_standby(&mut self, i: usize) {
        self.standbys[i].stop_immediate();
    }

    /// Starts standby `i` again and waits until it streams.
    pub fn start_standby(&mut self, i: usize) {
        self.standbys[i].start();
        self.wait_streaming(i);
    }

    /// Pauses WAL replay on standby `i` (`pg_wal_replay_pause()`): it keeps receiving
    /// but applies nothing, so it falls behind as soon as the primary writes.
    pub fn pause_replay(&self, i: usize) {
        self.standbys[i]
            .client()
            .batch_execute("SELECT pg_wal_replay_pause()")
            .expect("pg_wal_replay_pause");
    }

    /// Resumes WAL replay on standby `i`.
    pub fn resume_replay(&self, i: usize) {
        self.standbys[i]
            .client()
            .batch_execute("SELECT pg_wal_replay_resume()")
            .expect("pg_wal_replay_resume");
    }

    /// Promotes standby `i` (`pg_ctl promote -w`: returns once it accepts writes).
    pub fn promote(&self, i: usize) {
        self.standbys[i].promote();
    }

    /// Stops the primary at once (`pg_ctl stop -m immediate`), as if it crashed.
    pub fn stop_primary(&mut self) {
        self.primary.stop_immediate();
    }

    /// A write on the primary (a row in `replication_probe`, made on first use): what a
    /// paused standby falls behind on.
    pub fn write_on_primary(&self) {
        self.primary
            .client()
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS replication_probe (at timestamptz); \
                 INSERT INTO replication_probe VALUES (now())",
            )
            .expect("write on the primary");
    }
}

/// How many sessions at the server on `port` carry `app` as `application_name` (`None`:
/// the server did not answer).
pub fn sessions_at(port: u16, app: &str) -> Option<i64> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2");
    let mut c = postgres::Client::connect(&url, postgres::NoTls).ok()?;
    c.query_one(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
        &[&app],
    )
    .ok()
    .map(|r| r.get(0))
}

/// One reading of [`sample_sessions`]: the session count at each server, and the time
/// from the first count's start to the last one's end.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Per server, in the order of the ports given.
    pub counts: Vec<i64>,
    /// How far apart the counts may have been taken.
    pub span: Duration,
}

/// Counts the sessions carrying `app` at every server `rounds` times, `every` apart: one
/// thread per server, each with its own connection, all counting at once (a barrier
/// starts each round), so that a sum is a near-instant picture and not one server now
/// and another later (a connection closed at one and opened at the next would count
/// twice). The span of each reading says how near; compare it with how long opening a
/// connection takes.
pub fn sample_sessions(ports: &[u16], app: &str, rounds: usize, every: Duration) -> Vec<Sample> {
    let barrier = std::sync::Barrier::new(ports.len());
    let per_server: Vec<Vec<(Instant, Instant, i64)>> = std::thread::scope(|s| {
        let handles: Vec<_> = ports
            .iter()
            .map(|&port| {
                let barrier = &barrier;
                s.spawn(move || {
                    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
                    let mut c = postgres::Client::connect(&url, postgres::NoTls)
                        .expect("sampling connection");
                    let count = c
                        .prepare(
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                        )
                        .expect("prepare");
                    (0..rounds)
                        .map(|_| {
                            barrier.wait();
                            let start = Instant::now();
                            let n: i64 = c.query_one(&count, &[&app]).expect("count").get(0);
                            let end = Instant::now();
                            std::thread::sleep(every);
                            (start, end, n)
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (0..rounds)
        .map(|i| {
            let first = per_server.iter().map(|v| v[i].0).min().unwrap();
            let last = per_server.iter().map(|v| v[i].1).max().unwrap();
            Sample {
                counts: per_server.iter().map(|v| v[i].2).collect(),
                span: last - first,
            }
        })
        .collect()
}
