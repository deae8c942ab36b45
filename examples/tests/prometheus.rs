//! The prometheus example, scraped over loopback: `/metrics` agrees with `statistics()`,
//! `/health` is the `HealthReport` as JSON, 503 while the pool has alerts.
//!
//! Run: `cargo test -p examples --test prometheus`. One test function: the example installs
//! the process's global recorder, which can be done once.

#[allow(dead_code)] // its main is the example's, not this test's
#[path = "../prometheus.rs"]
mod prometheus;

use std::net::SocketAddr;
use std::time::Duration;

use test_support::eventually;

/// Generous: the gauges are published every 100 ms.
const FRESH: Duration = Duration::from_secs(5);

/// The value of the series `name{labels}` of the example's pool, as rendered (labels as
/// the exporter writes them: dots replaced by underscores, in the order registered).
fn value(text: &str, name: &str, extra: &str) -> Option<f64> {
    let pool = r#"db_client_connection_pool_name="example-db""#;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| l.contains(pool) && (extra.is_empty() || l.contains(extra)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = prometheus::get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn metrics_and_health_over_loopback_agree_with_statistics() {
    let handle = prometheus::install_recorder().expect("the global recorder");
    let pool = prometheus::example_pool().expect("the pool");
    let addr = prometheus::serve("127.0.0.1:0", pool.clone(), handle).expect("serve");

    // Work without trouble: /health is 200.
    for _ in 0..20 {
        drop(pool.acquire().unwrap());
    }
    let (status, body) = prometheus::get(addr, "/health").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with(r#"{"healthy":true,"alerts":[],"#),
        "{body}"
    );
    assert!(body.contains(r#""recent_timeouts":0}"#), "{body}");

    // Some work: 5 acquisitions, one of them held while the others run, one timeout.
    let held = pool.acquire().unwrap();
    for _ in 0..4 {
        drop(pool.acquire().unwrap());
    }
    let (a, b, c) = (
        pool.acquire().unwrap(),
        pool.acquire().unwrap(),
        pool.acquire().unwrap(),
    );
    assert!(pool
        .acquire_timeout(Duration::from_millis(20))
        .unwrap_err()
        .is_timeout());

    // All four held, max_size 4: the gauges say so, and /health is 503 (utilization 100 %).
    let s = pool.statistics();
    assert_eq!(s.active_connections, 4);
    let used = r#"db_client_connection_state="used""#;
    let idle = r#"db_client_connection_state="idle""#;
    assert!(
        eventually(FRESH, || {
            let text = scrape(addr);
            value(&text, "db_client_connection_count", used) == Some(4.0)
                && value(&text, "db_client_connection_timeouts", "") == Some(1.0)
        }),
        "{}",
        scrape(addr)
    );
    let (status, body) = prometheus::get(addr, "/health").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(r#"{"healthy":false,"alerts":[{"kind":"high_utilization""#),
        "{body}"
    );
    assert!(body.contains(r#""active_connections":4,"#), "{body}");

    drop((held, a, b, c));
    // Enough hits that the cache hit rate is healthy again (at most 4 misses: max_size).
    for _ in 0..20 {
        drop(pool.acquire().unwrap());
    }
    // Back to idle: every gauge and counter as statistics() says.
    assert!(
        eventually(FRESH, || {
            let text = scrape(addr);
            let s = pool.statistics();
            value(&text, "db_client_connection_count", used) == Some(s.active_connections as f64)
                && value(&text, "db_client_connection_count", idle)
                    == Some(s.idle_connections as f64)
                && value(&text, "db_client_connection_max", "") == Some(s.max_size as f64)
                && value(&text, "db_client_connection_min", "") == Some(s.min_size as f64)
                && value(&text, "db_client_connection_pending_requests", "")
                    == Some(s.waiting_requests as f64)
                && value(&text, "db_client_connection_created", "") == Some(s.total_created as f64)
                && value(&text, "db_client_connection_timeouts", "")
                    == Some(s.total_timeouts as f64)
                && value(&text, "db_client_connection_wait_time_count", "")
                    == Some(s.total_acquired as f64)
                && value(&text, "db_client_connection_use_time_count", "")
                    == Some(s.total_released as f64)
                && value(&text, "db_client_connection_create_time_count", "")
                    == Some(s.total_created as f64)
        }),
        "{}\n{:#?}",
        scrape(addr),
        pool.statistics()
    );
    let text = scrape(addr);
    assert!(
        text.contains("# TYPE db_client_connection_wait_time histogram"),
        "{text}"
    );
    assert!(
        text.contains("db_client_connection_wait_time_bucket{"),
        "{text}"
    );

    // Idle again, but a caller timed out less than a minute ago: that alert alone stays
    // (health judges the last minute), and clears a minute after the timeout.
    let s = pool.statistics();
    let (status, body) = prometheus::get(addr, "/health").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with(r#"{"healthy":false,"alerts":[{"kind":"timeouts","message":"1 acquire call timed out in the last 1 min"#),
        "{body}"
    );
    assert!(body.contains(r#""recent_timeouts":1}"#), "{body}");
    assert!(
        body.contains(&format!(r#""total_acquired":{},"#, s.total_acquired)),
        "{body}"
    );
    assert_eq!(prometheus::get(addr, "/nothing").unwrap().0, 404);
    pool.shutdown_timeout(Duration::from_secs(5));
}
