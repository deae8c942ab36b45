//! Metrics where operators already look: `/metrics` for Prometheus, `/health` for a load
//! balancer or Kubernetes probe.
//!
//! `cargo run --example prometheus` (no setup: an in-memory SQLite database) starts the
//! server on 127.0.0.1, runs a little work through the pool, prints what a scrape of
//! `/metrics` and `/health` returns, and exits; `-- --serve` keeps serving (on
//! 127.0.0.1:9898) until interrupted, for a Prometheus to scrape:
//!
//! ```text
//! scrape_configs:
//!   - job_name: my-app
//!     static_configs: [{ targets: ["127.0.0.1:9898"] }]
//! ```
//!
//! * pool-core's `metrics` feature reports through the `metrics` facade; the recorder here
//!   is `metrics-exporter-prometheus`'s, installed before the pool is built (the pool
//!   registers its handles when it is built). The names follow OpenTelemetry's database
//!   connection pool conventions (`db_client_connection_count{db_client_connection_state="used"}`
//!   once Prometheus has replaced the dots); the table, and the HikariCP names next to
//!   them, are in `pool_core::metrics`.
//! * `/health` is the pool's `HealthReport` as JSON, with HTTP 503 while it has alerts
//!   (a pool near `max_size`; over the last minute: slow acquires, timeouts, failed opens,
//!   failing validations...; an alert over the last minute clears a minute after the
//!   trouble ends).
//! * The exporter's histograms keep samples until rendered: a thread runs its upkeep.
//!
//! `tests/prometheus.rs` scrapes both over loopback and checks them against `statistics()`.

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pool_core::{Alert, ConnectionFactory, ConnectionPool, HealthReport, PoolConfig};
use pool_sqlite::{SqliteConnectionFactory, SqlitePool};

/// Bucket bounds (seconds) for the pool's histograms (`wait_time`, `use_time`,
/// `create_time`), from "free" to "something is wrong".
const BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let serve_forever = std::env::args().any(|a| a == "--serve");
    // 1. The recorder first: the pool binds its handles to the one installed when it is built.
    let metrics = install_recorder()?;

    // 2. The pool (its name is the `db_client_connection_pool_name` label).
    let pool = example_pool()?;

    // 3. /metrics and /health.
    let addr = if serve_forever {
        "127.0.0.1:9898"
    } else {
        "127.0.0.1:0"
    };
    let addr = serve(addr, pool.clone(), metrics)?;
    println!("serving http://{addr}/metrics and http://{addr}/health");

    // Some work, so the histograms have samples.
    for i in 0..20 {
        let conn = pool.acquire()?;
        conn.execute("INSERT INTO visits VALUES (?1)", [format!("/page/{i}")])?;
    }
    if serve_forever {
        loop {
            thread::sleep(Duration::from_secs(60));
        }
    }
    thread::sleep(pool_core::metrics::PUBLISH_INTERVAL * 2); // let the gauges catch up
    let (_, text) = get(addr, "/metrics")?;
    println!("GET /metrics (the pool's series):");
    for line in text
        .lines()
        .filter(|l| l.starts_with("db_client_connection_"))
    {
        if !line.contains("_bucket{") {
            println!("  {line}");
        }
    }
    let (status, health) = get(addr, "/health")?;
    println!("GET /health -> {status}\n  {health}");
    pool.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// Installs the Prometheus recorder as the global `metrics` recorder, with buckets for the
/// pool's histograms (without them, the exporter renders summaries), and starts its upkeep.
pub fn install_recorder() -> Result<PrometheusHandle, Box<dyn std::error::Error>> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("db.client.connection.".into()), BUCKETS)?
        .install_recorder()?;
    let upkeep = handle.clone();
    thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            thread::sleep(Duration::from_secs(5));
            upkeep.run_upkeep();
        })?;
    Ok(handle)
}

/// The example's pool: SQLite in memory, one table.
pub fn example_pool() -> Result<SqlitePool, Box<dyn std::error::Error>> {
    let factory = SqliteConnectionFactory::memory("prometheus-example")?
        .with_init_sql("CREATE TABLE IF NOT EXISTS visits (page TEXT)");
    let config = PoolConfig::builder()
        .name("example-db")
        .min_size(1)
        .max_size(4)
        .wait_timeout(Duration::from_secs(2))
        .build()?;
    Ok(SqlitePool::new(factory, config)?)
}

/// Serves `/metrics` (Prometheus' text format) and `/health` (JSON; 503 while unhealthy)
/// on `addr` from a background thread. Returns the address bound (`addr` may ask for port 0).
pub fn serve<F: ConnectionFactory>(
    addr: &str,
    pool: ConnectionPool<F>,
    metrics: PrometheusHandle,
) -> Result<SocketAddr, Box<dyn std::error::Error>> {
    let server = tiny_http::Server::http(addr).map_err(|e| e.to_string())?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or("the server is not on an IP address")?;
    thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let (status, content_type, body) = match request.url() {
                    "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
                    "/health" => {
                        let report = pool.health();
                        let status = if report.is_healthy() { 200 } else { 503 };
                        (status, "application/json", health_json(&report))
                    }
                    _ => (404, "text/plain", "try /metrics or /health\n".to_owned()),
                };
                let header = tiny_http::Header::from_bytes("Content-Type", content_type)
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(body)
                    .with_status_code(status)
                    .with_header(header);
                let _ = request.respond(response); // a scraper that hung up: nothing to do
            }
        })?;
    Ok(bound)
}

/// A `HealthReport` as JSON: `healthy`, the alerts (kind and message) and the statistics'
/// numbers (durations in seconds).
pub fn health_json(report: &HealthReport) -> String {
    let s = &report.statistics;
    let alerts: Vec<String> = report
        .alerts
        .iter()
        .map(|a| {
            let kind = match a {
                Alert::HighUtilization { .. } => "high_utilization",
                Alert::SlowAcquire { .. } => "slow_acquire",
                Alert::SlowAcquireP99 { .. } => "slow_acquire_p99",
                Alert::Timeouts { .. } => "timeouts",
                Alert::CreateFailures { .. } => "create_failures",
                Alert::LowCacheHitRate { .. } => "low_cache_hit_rate",
                Alert::ValidationFailures { .. } => "validation_failures",
                _ => "other",
            };
            format!(
                r#"{{"kind":"{kind}","message":{}}}"#,
                json_string(&a.to_string())
            )
        })
        .collect();
    let numbers: [(&str, String); 18] = [
        ("total_connections", s.total_connections.to_string()),
        ("idle_connections", s.idle_connections.to_string()),
        ("active_connections", s.active_connections.to_string()),
        ("waiting_requests", s.waiting_requests.to_string()),
        ("opening_connections", s.opening_connections.to_string()),
        ("max_size", s.max_size.to_string()),
        ("min_size", s.min_size.to_string()),
        ("total_acquired", s.total_acquired.to_string()),
        ("total_released", s.total_released.to_string()),
        ("total_created", s.total_created.to_string()),
        ("total_closed", s.total_closed.to_string()),
        ("total_timeouts", s.total_timeouts.to_string()),
        ("total_create_failures", s.total_create_failures.to_string()),
        ("circuit_breaker_open", s.circuit_breaker_open.to_string()),
        (
            "average_wait_seconds",
            s.average_wait_time.as_secs_f64().to_string(),
        ),
        ("cache_hit_rate", s.cache_hit_rate.to_string()),
        (
            "recent_wait_p99_seconds",
            s.recent.wait_p99.as_secs_f64().to_string(),
        ),
        ("recent_timeouts", s.recent.timeouts.to_string()),
    ];
    let numbers: Vec<String> = numbers
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    format!(
        r#"{{"healthy":{},"alerts":[{}],"statistics":{{{}}}}}"#,
        report.is_healthy(),
        alerts.join(","),
        numbers.join(",")
    )
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A plain HTTP/1.0 GET over loopback: (status code, body).
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
