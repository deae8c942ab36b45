//! A bounded soak: 60 s (`POOL_SOAK_SECS` to shorten it locally) of mixed faults and load
//! against every backend whose server is up, all at once, each behind its own proxy with
//! 32 client threads on a max_size 8 pool. Same figures and rules as the scenarios; memory
//! and threads are checked once, around the whole soak. `cargo test --workspace` runs it.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use integration_tests::backends::{Http, Postgres, Redis};
use integration_tests::chaos::{check, run, serial, Report, Scenario, RSS_TOLERANCE_KIB};
use integration_tests::http_server::{HttpServer, HTTPD_THREADS};
use integration_tests::{loud, services, sys};

fn soak_duration() -> Duration {
    let secs = std::env::var("POOL_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60)
        .clamp(10, 60);
    Duration::from_secs(secs)
}

#[test]
fn soak_mixed_faults() {
    let _one_at_a_time = serial();
    let total = soak_duration();
    let started = Instant::now();
    let exclude = [HTTPD_THREADS];
    let server = HttpServer::start();
    sys::warm_backtrace_cache();
    let rss0 = sys::rss_kib();
    let threads0 = sys::threads_excluding(&exclude);

    let mut runs: Vec<thread::JoinHandle<Report>> = Vec::new();
    let scenario = Scenario::Soak(total);
    let spawn = |name: &str, f: Box<dyn FnOnce() -> Report + Send>| {
        thread::Builder::new()
            .name(format!("cx-soak-{name}"))
            .spawn(f)
            .expect("spawn a soak run")
    };
    if let Some(addr) = services::postgres_or_skip("soak_mixed_faults (postgres part)") {
        runs.push(spawn(
            "postgres",
            Box::new(move || run(Arc::new(Postgres::shared(addr)), scenario, false)),
        ));
    }
    if let Some(addr) = services::redis_or_skip("soak_mixed_faults (redis part)") {
        runs.push(spawn(
            "redis",
            Box::new(move || run(Arc::new(Redis { addr }), scenario, false)),
        ));
    }
    let addr = server.addr();
    runs.push(spawn(
        "http",
        Box::new(move || run(Arc::new(Http { addr }), scenario, false)),
    ));
    let reports: Vec<Report> = runs
        .into_iter()
        .map(|r| r.join().expect("a soak run panicked"))
        .collect();

    let threads1 = sys::wait_threads_at_most(threads0, &exclude, Duration::from_secs(5));
    let rss1 = sys::rss_kib();
    loud(&format!(
        "== soak total: {:.1} s; RSS {:.1} -> {:.1} MiB; threads {threads0} -> {threads1}",
        started.elapsed().as_secs_f64(),
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0
    ));
    let leftover = if threads1 > threads0 {
        sys::thread_names()
    } else {
        Vec::new()
    };
    check(&reports);
    assert!(
        threads1 <= threads0,
        "threads after the soak: {threads1}, before: {threads0}: {leftover:?}"
    );
    assert!(
        rss1 <= rss0 + RSS_TOLERANCE_KIB,
        "RSS grew from {rss0} KiB to {rss1} KiB over the soak"
    );
}
