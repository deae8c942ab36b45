//! The dashboard put together: the demo's server and load, a pool between them, the
//! sampler, and the HTTP routes the page uses.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (`page.html`: inline CSS, SVG and script, nothing fetched elsewhere) |
//! | `GET /stats?since=SEQ` | JSON: `pool.statistics()` and `pool.health()` now, the server and the load, and the samples after `SEQ` |
//! | `POST /break`, `POST /heal` | the server drops every socket and refuses connections / accepts again |
//! | `POST /load?threads=N` | `N` worker threads run, the others pause (0: no load) |

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, HumanDuration, PoolConfig};

use crate::history::{History, Sampler, WaitRecorder};
use crate::http::{HttpServer, Request, Response};
use crate::protocol::{LineConnection, LineFactory};
use crate::server::DemoServer;
use crate::workload::Workload;

/// The page, served as is.
const PAGE: &str = include_str!("page.html");

/// The pool's ceiling.
pub const MAX_SIZE: usize = 6;
/// Connections kept open at all times.
pub const MIN_SIZE: usize = 2;

/// How the dashboard runs (the command line's `--port`, `--threads`).
#[derive(Debug, Clone)]
pub struct Options {
    /// The page's port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Worker threads generating the load.
    pub threads: usize,
}

/// A running dashboard; [`Dashboard::stop`] ends it.
pub struct Dashboard {
    http: HttpServer,
    sampler: Sampler,
    parts: Arc<Parts>,
}

/// What the routes use.
struct Parts {
    pool: ConnectionPool<LineFactory>,
    server: DemoServer,
    history: Arc<History>,
    /// `None` once stopped. Held only to read or set the number of active workers, or to
    /// take the workload out at the end: never across a wait.
    workload: Mutex<Option<Workload>>,
    started: Instant,
}

impl Dashboard {
    /// Starts the server, the pool, the load, the sampler and the page.
    pub fn start(options: &Options) -> Result<Dashboard, Box<dyn StdError>> {
        let started = Instant::now();
        let server = DemoServer::start()?;
        let recorder = Arc::new(WaitRecorder::default());
        let config = PoolConfig::builder()
            .name("dashboard")
            .min_size(MIN_SIZE)
            .max_size(MAX_SIZE)
            .wait_timeout(Duration::from_millis(750))
            .create_timeout(Duration::from_millis(500))
            .validate_on_acquire(true)
            .validation_timeout(Duration::from_millis(250))
            .validation_skip_window(Duration::from_millis(500))
            .housekeeping_interval(Duration::from_millis(250))
            .create_backoff(Duration::from_millis(25), Duration::from_millis(250))
            .build()?;
        let factory = LineFactory {
            addr: server.addr(),
            io_timeout: Duration::from_secs(1),
        };
        let pool = ConnectionPool::builder(factory)
            .config(config)
            .observer_arc(recorder.clone())
            .build()?;
        let history = Arc::new(History::default());
        let sampler = Sampler::start(&pool, recorder, history.clone(), started);
        let workload =
            Workload::start(&pool, options.threads, |conn: &mut LineConnection, work| {
                conn.work(work)
            });
        let parts = Arc::new(Parts {
            pool,
            server,
            history,
            workload: Mutex::new(Some(workload)),
            started,
        });
        let routes = parts.clone();
        let http = HttpServer::start(options.port, Arc::new(move |r: &Request| routes.route(r)))?;
        Ok(Dashboard {
            http,
            sampler,
            parts,
        })
    }

    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.http.addr())
    }

    /// The pool the page shows.
    pub fn pool(&self) -> &ConnectionPool<LineFactory> {
        &self.parts.pool
    }

    /// Stops the page, the load and the sampler, then shuts the pool down (bounded);
    /// returns a summary to print.
    pub fn stop(self) -> String {
        self.http.stop();
        let workload = self.parts.workload().take();
        let tally = workload.map(Workload::stop);
        self.sampler.stop();
        let closed = self.parts.pool.shutdown_timeout(Duration::from_secs(2));
        let s = self.parts.pool.statistics();
        let mut out = format!(
            "ran {}: {} acquires, {} timeouts, {} failed opens; average wait {}, max {}; \
             every connection closed at shutdown: {closed}",
            HumanDuration(self.parts.started.elapsed()),
            s.total_acquired,
            s.total_timeouts,
            s.total_create_failures,
            HumanDuration(s.average_wait_time),
            HumanDuration(s.max_wait_time)
        );
        if let Some(t) = tally {
            let _ = write!(
                out,
                "\nrequests: {} ok, {} failed on a dead connection, {} failed fast",
                t.ok.load(Relaxed),
                t.io_errors.load(Relaxed),
                t.failed_fast.load(Relaxed)
            );
        }
        out
    }
}

impl Parts {
    /// The workload, locked (see the field).
    fn workload(&self) -> std::sync::MutexGuard<'_, Option<Workload>> {
        self.workload.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The routes (the module's table).
    fn route(&self, request: &Request) -> Response {
        match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/") => Response::ok("text/html; charset=utf-8", PAGE),
            ("GET", "/stats") => {
                let since = request.param("since").and_then(|s| s.parse().ok());
                Response::ok("application/json", self.stats_json(since.unwrap_or(0)))
            }
            ("POST", "/break") => {
                let dropped = self.server.break_down();
                Response::ok(
                    "text/plain",
                    format!("server down, {dropped} sockets dropped\n"),
                )
            }
            ("POST", "/heal") => {
                self.server.heal();
                Response::ok("text/plain", "server up\n")
            }
            ("POST", "/load") => match request.param("threads").map(str::parse::<usize>) {
                Some(Ok(n)) => match &*self.workload() {
                    Some(w) => {
                        w.set_active(n);
                        Response::ok("text/plain", format!("{} threads\n", w.active().0))
                    }
                    None => Response::error(400, "stopped"),
                },
                _ => Response::error(400, "threads=N (a number) expected"),
            },
            (_, "/" | "/stats" | "/break" | "/heal" | "/load") => {
                Response::error(405, "method not allowed")
            }
            _ => Response::error(404, "not found"),
        }
    }

    /// `/stats`: everything the page shows, by hand in JSON (durations people read are
    /// formatted here, with [`HumanDuration`]).
    fn stats_json(&self, since: u64) -> String {
        let health = self.pool.health();
        let s = &health.statistics;
        let latest = self.history.latest().unwrap_or_default();
        let (active, threads) = match &*self.workload() {
            Some(w) => w.active(),
            None => (0, 0),
        };
        let mut j = String::with_capacity(4096);
        let _ = write!(
            j,
            "{{\"name\":\"dashboard\",\"uptime_ms\":{},\"stats\":{{\"open\":{},\"idle\":{},\
             \"in_use\":{},\"waiting\":{},\"opening\":{},\"min_size\":{},\"max_size\":{},\
             \"total_acquired\":{},\"total_released\":{},\"total_created\":{},\
             \"total_closed\":{},\"total_timeouts\":{},\"total_create_failures\":{},\
             \"circuit_breaker_open\":{}}},",
            self.started.elapsed().as_millis(),
            s.total_connections,
            s.idle_connections,
            s.active_connections,
            s.waiting_requests,
            s.opening_connections,
            s.min_size,
            s.max_size,
            s.total_acquired,
            s.total_released,
            s.total_created,
            s.total_closed,
            s.total_timeouts,
            s.total_create_failures,
            s.circuit_breaker_open
        );
        let _ = write!(
            j,
            "\"text\":{{\"average_wait\":{},\"max_wait\":{},\"p50\":{},\"p95\":{},\"p99\":{},\
             \"cache_hit_rate\":{}}},",
            json_str(&HumanDuration(s.average_wait_time).to_string()),
            json_str(&HumanDuration(s.max_wait_time).to_string()),
            json_str(&HumanDuration(latest.p50).to_string()),
            json_str(&HumanDuration(latest.p95).to_string()),
            json_str(&HumanDuration(latest.p99).to_string()),
            json_str(&format!("{:.1} %", s.cache_hit_rate * 100.0))
        );
        let _ = write!(
            j,
            "\"server\":{{\"up\":{},\"sockets\":{},\"peak_sockets\":{},\"accepted\":{},\
             \"refused\":{}}},\
             \"load\":{{\"active\":{active},\"threads\":{threads}}},\"alerts\":[",
            self.server.is_up(),
            self.server.live_sockets(),
            self.server.peak_sockets(),
            self.server.accepted(),
            self.server.refused()
        );
        for (i, alert) in health.alerts.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(j, "{sep}{}", json_str(&alert.to_string()));
        }
        j.push_str("],\"samples\":[");
        for (i, sample) in self.history.since(since).iter().enumerate() {
            if i > 0 {
                j.push(',');
            }
            j.push_str(&sample.json());
        }
        j.push_str("]}");
        j
    }
}

/// `text` as a JSON string literal.
fn json_str(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
