//! `SELECT 1` through pool-core + pool-postgres, side by side with r2d2 + r2d2_postgres, with
//! pgbench on the same machine as the ceiling.
//!
//! Run: `cargo bench -p pool-postgres --bench select1`. Needs the server at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); without it, prints
//! why and exits 0. `BENCH_SECS` sets the measured time per row (default 2 s, run as two
//! halves in the order A B C D, D C B A, so a drift of the machine falls on every pool
//! alike; each half has a 0.3 s warm-up, and starts once the server has no session left
//! from the row before).
//!
//! Rows: 8 and 32 threads sharing a pool of max_size 8; `simple` (simple query protocol),
//! `prepared` (a statement prepared once per connection, then executed) and `unprepared`
//! (SQL text with a parameter each time, `conn.query("SELECT $1::int", &[&1])`: Parse and
//! Describe, then Bind and Execute, per query, as most code does). Pools:
//!
//! * `pool-core`: defaults (validation on acquire with the 500 ms 'used recently' skip,
//!   the open-transaction check on every release: one extra round trip);
//! * `pool-core -txcheck`: the same with `with_transaction_check(false)`, doing the same
//!   work per query as r2d2 without its checkout test;
//! * `r2d2`: defaults (`test_on_check_out = true`: an empty query on every checkout);
//! * `r2d2 -test`: `test_on_check_out(false)`.
//!
//! The ceiling is `pgbench -n -c 8 -j 2 -M simple|prepared|extended` running the script
//! `SELECT 1;`: eight connections, no pool, in C.
//!
//! Last (alone with `SELECT1_CPU_ONLY=1`), a table of client CPU per query on one thread, for each mode: the bare driver (no
//! pool, no bounded streams), a connection the factory opened (the bounded streams, no
//! pool), and each pool as above, one connection. CPU is the time the process's threads
//! spent on a CPU (`/proc/self/task/*/schedstat`, user + system) over the queries run: what
//! each layer costs the client, on a machine where the client and the server share cores.
//! For instruction counts (stable on a busy machine), run that table under callgrind with a
//! fixed number of queries per row; each row is one dump, in table order:
//!
//! ```text
//! SELECT1_CPU_ONLY=1 SELECT1_QUERIES=2000 valgrind --tool=callgrind \
//!     --toggle-collect='*counted*' --dump-after='*counted*' target/release/deps/select1-* --bench
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pool_core::{ConnectionPool, PoolConfig};
use pool_postgres::postgres::{self, NoTls, Statement};
use pool_postgres::PostgresConnectionFactory;
use r2d2_postgres::PostgresConnectionManager;

const MAX_SIZE: usize = 8;
const WARMUP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Simple,
    Prepared,
    /// SQL text with a parameter every time (`conn.query("SELECT $1::int", &[&1])`): the
    /// driver sends Parse + Describe, then Bind + Execute, per query.
    Unprepared,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Prepared => "prepared",
            Mode::Unprepared => "unprepared",
        }
    }

    /// pgbench's `-M` for the same protocol (`extended`: unnamed statements, parsed per query).
    fn pgbench(self) -> &'static str {
        match self {
            Mode::Simple => "simple",
            Mode::Prepared => "prepared",
            Mode::Unprepared => "extended",
        }
    }
}

/// The query of [`Mode::Unprepared`].
const UNPREPARED_SQL: &str = "SELECT $1::int";

/// Runs `op` on `threads` threads for WARMUP + `secs`, returns queries per second measured
/// after the warm-up.
fn run<F>(threads: usize, secs: Duration, op: F) -> f64
where
    F: Fn() + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (op, barrier) = (op.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                while start.elapsed() < WARMUP {
                    op();
                }
                let measure_start = Instant::now();
                let mut n = 0u64;
                while measure_start.elapsed() < secs {
                    op();
                    n += 1;
                }
                (n, measure_start.elapsed())
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| {
            let (n, took) = h.join().expect("bench thread panicked");
            n as f64 / took.as_secs_f64()
        })
        .sum()
}

thread_local! {
    /// pool-core: statements prepared by this thread, per pooled connection id.
    static PREPARED: RefCell<HashMap<u64, Statement>> = RefCell::new(HashMap::new());
}

/// Waits (up to 5 s) until the server has no session left from an earlier row (the
/// benchmark's application names start with `bench-`), so that a pool's sessions ending
/// (their backends exiting) do not take CPU from the row measured after it.
fn wait_for_quiet_server(url: &str) {
    let Ok(mut client) = postgres::Client::connect(url, NoTls) else {
        return;
    };
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        let left: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'bench-%'",
                &[],
            )
            .map(|row| row.get(0))
            .unwrap_or(0);
        if left == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// pool-core's pool for a row: `MAX_SIZE` connections opened at once, the defaults but
/// `with_transaction_check(tx_check)`; built once the server is quiet.
fn pool_core_pool(url: &str, tx_check: bool) -> ConnectionPool<PostgresConnectionFactory> {
    wait_for_quiet_server(url);
    let factory = PostgresConnectionFactory::new(url)
        .expect("url")
        .with_application_name("bench-pool-core")
        .with_transaction_check(tx_check);
    let config = PoolConfig::builder()
        .min_size(MAX_SIZE)
        .max_size(MAX_SIZE)
        .wait_timeout(Duration::from_secs(30))
        .build()
        .expect("config");
    ConnectionPool::new(factory, config).expect("pool")
}

/// r2d2's pool for a row: `MAX_SIZE` connections (r2d2 opens `min_idle`, by default all
/// of them, before `build` returns), `test_on_check_out` as given; built once the server
/// is quiet.
fn r2d2_pool(url: &str, test_on_check_out: bool) -> r2d2::Pool<PostgresConnectionManager<NoTls>> {
    wait_for_quiet_server(url);
    let config: postgres::Config = format!("{url}?application_name=bench-r2d2")
        .replace("??", "?")
        .parse()
        .expect("url");
    let manager = PostgresConnectionManager::new(config, NoTls);
    r2d2::Pool::builder()
        .max_size(MAX_SIZE as u32)
        .test_on_check_out(test_on_check_out)
        .connection_timeout(Duration::from_secs(30))
        .build(manager)
        .expect("r2d2 pool")
}

fn bench_pool_core(url: &str, threads: usize, mode: Mode, tx_check: bool, secs: Duration) -> f64 {
    let pool = pool_core_pool(url, tx_check);
    let p = pool.clone();
    let qps = run(threads, secs, move || {
        let mut conn = p.acquire().expect("acquire");
        match mode {
            Mode::Simple => {
                conn.simple_query("SELECT 1").expect("query");
            }
            Mode::Prepared => {
                let id = conn.id();
                let stmt = PREPARED.with(|m| m.borrow().get(&id).cloned());
                let stmt = match stmt {
                    Some(s) => s,
                    None => {
                        let s = conn.prepare("SELECT 1").expect("prepare");
                        PREPARED.with(|m| m.borrow_mut().insert(id, s.clone()));
                        s
                    }
                };
                conn.query(&stmt, &[]).expect("query");
            }
            Mode::Unprepared => {
                conn.query(UNPREPARED_SQL, &[&1i32]).expect("query");
            }
        }
    });
    pool.shutdown();
    qps
}

fn bench_r2d2(
    url: &str,
    threads: usize,
    mode: Mode,
    test_on_check_out: bool,
    secs: Duration,
) -> f64 {
    let pool = r2d2_pool(url, test_on_check_out);
    let p = pool.clone();
    run(threads, secs, move || {
        let mut conn = p.get().expect("get");
        match mode {
            Mode::Simple => {
                conn.simple_query("SELECT 1").expect("query");
            }
            Mode::Prepared => {
                let stmt = r2d2::PooledConnection::extensions(&conn)
                    .get::<Statement>()
                    .cloned();
                let stmt = match stmt {
                    Some(s) => s,
                    None => {
                        let s = conn.prepare("SELECT 1").expect("prepare");
                        r2d2::PooledConnection::extensions_mut(&mut conn).insert(s.clone());
                        s
                    }
                };
                conn.query(&stmt, &[]).expect("query");
            }
            Mode::Unprepared => {
                conn.query(UNPREPARED_SQL, &[&1i32]).expect("query");
            }
        }
    })
}

/// pgbench's tps for `SELECT 1;` with 8 clients and 2 threads, or why it could not run.
fn pgbench(url: &str, mode: Mode, secs: Duration) -> Result<f64, String> {
    let config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("postgres").to_owned();
    let db = config.get_dbname().unwrap_or("postgres").to_owned();
    let script =
        std::env::temp_dir().join(format!("pool-postgres-select1-{}.sql", std::process::id()));
    std::fs::write(&script, "SELECT 1;\n").map_err(|e| e.to_string())?;
    let total = WARMUP + secs;
    let out = Command::new("pgbench")
        .args([
            "-n", "-h", &host, "-p", &port, "-U", &user, "-c", "8", "-j", "2",
        ])
        .args([
            "-M",
            mode.pgbench(),
            "-T",
            &total.as_secs().max(1).to_string(),
        ])
        .arg("-f")
        .arg(&script)
        .arg(&db)
        .output();
    let _ = std::fs::remove_file(&script);
    let out = out.map_err(|e| format!("pgbench not runnable ({e}); install postgresql-client"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.trim_start_matches("tps = ").split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no tps line in pgbench output: {stdout}"))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing special. Either way,
    // a quick smoke run is enough under `cargo test`.
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        // A test runner listing tests (cargo test --list, nextest): this is not a test.
        return;
    }
    let under_test = !args.iter().any(|a| a == "--bench");
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    if let Err(e) = postgres::Client::connect(&url, NoTls) {
        eprintln!("select1 bench: SKIPPED, PostgreSQL at {url} unreachable: {e}");
        return;
    }
    let secs = if under_test {
        Duration::from_millis(100)
    } else {
        std::env::var("BENCH_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(2))
    };

    if std::env::var_os("SELECT1_CPU_ONLY").is_some() {
        cpu_per_query(&url, secs);
        return;
    }
    println!("SELECT 1, max_size {MAX_SIZE}, {secs:?} per row (+{WARMUP:?} warm-up), same machine as the server");
    let mut ceilings = HashMap::new();
    for mode in [Mode::Simple, Mode::Prepared, Mode::Unprepared] {
        if under_test {
            break;
        }
        match pgbench(&url, mode, secs) {
            Ok(tps) => {
                println!(
                    "pgbench -c 8 -j 2 -M {:<8}  {:>10.0} q/s  (ceiling for {})",
                    mode.pgbench(),
                    tps,
                    mode.name()
                );
                ceilings.insert(mode.name(), tps);
            }
            Err(why) => println!("pgbench -M {}: skipped: {why}", mode.pgbench()),
        }
    }
    println!();
    println!(
        "{:>7} {:<9} {:<20} {:>10} {:>10} {:>10} {:>9}",
        "threads", "mode", "pool", "q/s", "vs r2d2", "vs r2d2-t", "pgbench%"
    );
    for threads in [8usize, 32] {
        for mode in [Mode::Simple, Mode::Prepared, Mode::Unprepared] {
            // Each pool runs twice for half the time, in the order A B C D then D C B A,
            // and its rate is the mean of the two: a drift of the machine or the server
            // over the four rows falls on every pool alike instead of on whichever ran
            // last.
            let half = secs / 2;
            let mut qps = [0.0f64; 4];
            for order in [[0, 1, 2, 3], [3, 2, 1, 0]] {
                for i in order {
                    let q = match i {
                        0 => bench_r2d2(&url, threads, mode, true, half),
                        1 => bench_r2d2(&url, threads, mode, false, half),
                        2 => bench_pool_core(&url, threads, mode, true, half),
                        _ => bench_pool_core(&url, threads, mode, false, half),
                    };
                    qps[i] += 0.5 * q;
                }
            }
            let [r2d2, r2d2_nt, core, core_nt] = qps;
            for (name, qps) in [
                ("pool-core", core),
                ("pool-core -txcheck", core_nt),
                ("r2d2", r2d2),
                ("r2d2 -test", r2d2_nt),
            ] {
                let ceiling = ceilings
                    .get(mode.name())
                    .map(|c| format!("{:.0}%", 100.0 * qps / c))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{:>7} {:<9} {:<20} {:>10.0} {:>9.2}x {:>9.2}x {:>9}",
                    threads,
                    mode.name(),
                    name,
                    qps,
                    qps / r2d2,
                    qps / r2d2_nt,
                    ceiling
                );
            }
        }
    }
    cpu_per_query(&url, secs);
    statement_cache_rows(&url, secs);
}

// ---------------------------------------------------------------------------------------
// Client CPU per query (kept apart from the throughput rows above).

/// CPU time (user + system) of the process's live threads so far: the sum of each
/// thread's time on a CPU, in nanoseconds, from `/proc/self/task/*/schedstat` (Linux).
/// `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended since the listing has no file any more: it adds nothing.
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Runs `op` on this thread for WARMUP + `secs`; returns (client CPU per query, wall time
/// per query), both measured after the warm-up. CPU is the whole process's (pool threads
/// included).
///
/// With `SELECT1_QUERIES=n`, runs a fixed `n` queries instead, in [`counted`], after 100
/// for warm-up: for instruction counts under callgrind (see the module docs).
fn cpu_loop(secs: Duration, mut op: impl FnMut()) -> (Duration, Duration) {
    let cpu = || process_cpu().unwrap_or_default();
    let fixed = std::env::var("SELECT1_QUERIES")
        .ok()
        .and_then(|n| n.parse::<u32>().ok());
    if let Some(n) = fixed {
        (0..100).for_each(|_| op());
        let (cpu0, t0) = (cpu(), Instant::now());
        counted(n, &mut op);
        let (cpu, wall) = (cpu().saturating_sub(cpu0), t0.elapsed());
        return (cpu / n.max(1), wall / n.max(1));
    }
    let start = Instant::now();
    while start.elapsed() < WARMUP {
        op();
    }
    let (cpu0, t0) = (cpu(), Instant::now());
    let mut n = 0u32;
    while t0.elapsed() < secs {
        op();
        n += 1;
    }
    let (cpu, wall) = (cpu().saturating_sub(cpu0), t0.elapsed());
    (cpu / n.max(1), wall / n.max(1))
}

/// Runs `op` `n` times: the function callgrind is told to count (`--toggle-collect`) and
/// to dump after (`--dump-after`), one dump per table row.
#[inline(never)]
fn counted(n: u32, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

/// One query of `mode` on `client`; `stmt` caches the prepared statement.
fn one_query(client: &mut postgres::Client, mode: Mode, stmt: &mut Option<Statement>) {
    match mode {
        Mode::Simple => {
            client.simple_query("SELECT 1").expect("query");
        }
        Mode::Prepared => {
            if stmt.is_none() {
                *stmt = Some(client.prepare("SELECT 1").expect("prepare"));
            }
            client
                .query(stmt.as_ref().expect("prepared"), &[])
                .expect("query");
        }
        Mode::Unprepared => {
            client.query(UNPREPARED_SQL, &[&1i32]).expect("query");
        }
    }
}

/// Client CPU per query on one thread (no contention, so the figures are the work each
/// layer adds): the bare driver (no pool, no bounded streams), a connection the factory
/// opened (the bounded streams, no pool), and each pool with and without its per-query
/// extras.
fn cpu_per_query(url: &str, secs: Duration) {
    println!();
    if process_cpu().is_none() {
        println!("client CPU per query: skipped (no /proc/self/task/*/schedstat)");
        return;
    }
    println!("client CPU per query, 1 thread (user+sys of the process's threads / queries)");
    println!(
        "{:<10} {:<34} {:>10} {:>10}",
        "mode", "client", "cpu us/q", "wall us/q"
    );
    let r2d2_pool = |test: bool| {
        let config: postgres::Config = format!("{url}?application_name=bench-r2d2-cpu")
            .replace("??", "?")
            .parse()
            .expect("url");
        r2d2::Pool::builder()
            .max_size(1)
            .test_on_check_out(test)
            .build(PostgresConnectionManager::new(config, NoTls))
            .expect("r2d2 pool")
    };
    let core_pool = |tx_check: bool| {
        let factory = PostgresConnectionFactory::new(url)
            .expect("url")
            .with_application_name("bench-pool-core-cpu")
            .with_transaction_check(tx_check);
        let config = PoolConfig::builder()
            .min_size(1)
            .max_size(1)
            .build()
            .expect("config");
        ConnectionPool::new(factory, config).expect("pool")
    };
    for mode in [Mode::Simple, Mode::Prepared, Mode::Unprepared] {
        let mut rows: Vec<(&str, (Duration, Duration))> = Vec::new();
        {
            let mut client = postgres::Client::connect(url, NoTls).expect("connect");
            let mut stmt = None;
            rows.push((
                "driver alone (no bounded streams)",
                cpu_loop(secs, || one_query(&mut client, mode, &mut stmt)),
            ));
        }
        {
            let factory = PostgresConnectionFactory::new(url).expect("url");
            let mut conn = pool_core::ConnectionFactory::create(&factory, Duration::from_secs(10))
                .expect("connect");
            let mut stmt = None;
            rows.push((
                "factory connection (bounded)",
                cpu_loop(secs, || one_query(&mut conn, mode, &mut stmt)),
            ));
        }
        for (name, tx_check) in [("pool-core", true), ("pool-core -txcheck", false)] {
            let pool = core_pool(tx_check);
            let mut stmt = None;
            let cost = cpu_loop(secs, || {
                let mut conn = pool.acquire().expect("acquire");
                one_query(&mut conn, mode, &mut stmt);
            });
            pool.shutdown();
            rows.push((name, cost));
        }
        for (name, test) in [("r2d2", true), ("r2d2 -test", false)] {
            let pool = r2d2_pool(test);
            let mut stmt = None;
            rows.push((
                name,
                cpu_loop(secs, || {
                    let mut conn = pool.get().expect("get");
                    one_query(&mut conn, mode, &mut stmt);
                }),
            ));
        }
        for (name, (cpu, wall)) in rows {
            println!(
                "{:<10} {:<34} {:>10.1} {:>10.1}",
                mode.name(),
                name,
                cpu.as_secs_f64() * 1e6,
                wall.as_secs_f64() * 1e6
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// The statement cache: SQL text with parameters on every call ("unprepared"), through
// pool-postgres's `query_one_cached` against r2d2_postgres's `query_one` with SQL text.
// ---------------------------------------------------------------------------------------

/// The unprepared query: SQL text and a parameter, as most code writes it.
const STMTCACHE_SQL: &str = "SELECT $1::int4 + 1";

/// How many slices each row's measured time is cut into; the rows' slices take turns, so
/// a change in the machine's load (it is shared) falls on every row alike.
const SLICES: u32 = 4;

/// Rows `unprepared` at 8 and 32 threads (pool max_size 8): each call passes the SQL text
/// and a parameter. `pool-core cached` runs it through the statement cache
/// (`query_one_cached`: prepared once per connection, then one round trip per call);
/// `pool-core` and `r2d2` call `query_one` with the text (the driver prepares, executes and
/// closes a statement every time: two round trips). `-txcheck` and `-test` as above; the
/// ratios are against r2d2 with its defaults and without its checkout test. Each row is
/// the mean of [`SLICES`] slices (a fresh pool and warm-up each), interleaved with the
/// other rows' in a rotating order.
fn statement_cache_rows(url: &str, secs: Duration) {
    type Row<'a> = (&'static str, Box<dyn Fn(usize, Duration) -> f64 + 'a>);
    let rows: Vec<Row<'_>> = vec![
        (
            "pool-core cached",
            Box::new(|t, d| bench_pool_core_unprepared(url, t, true, true, d)),
        ),
        (
            "pool-core cached -txcheck",
            Box::new(|t, d| bench_pool_core_unprepared(url, t, true, false, d)),
        ),
        (
            "pool-core",
            Box::new(|t, d| bench_pool_core_unprepared(url, t, false, true, d)),
        ),
        (
            "r2d2",
            Box::new(|t, d| bench_r2d2_unprepared(url, t, true, d)),
        ),
        (
            "r2d2 -test",
            Box::new(|t, d| bench_r2d2_unprepared(url, t, false, d)),
        ),
    ];
    println!();
    println!("statement cache: `{STMTCACHE_SQL}` with a parameter on every call");
    println!(
        "{:>7} {:<11} {:<26} {:>10} {:>10} {:>10}",
        "threads", "mode", "pool", "q/s", "vs r2d2", "vs r2d2-t"
    );
    // Under `cargo test` (a 100 ms smoke run) one slice: each slice has its own warm-up.
    let slices = if secs < Duration::from_secs(1) {
        1
    } else {
        SLICES
    };
    let slice = secs / slices;
    for threads in [8usize, 32] {
        let mut qps = vec![0.0f64; rows.len()];
        for round in 0..slices as usize {
            for k in 0..rows.len() {
                let i = (k + round) % rows.len();
                qps[i] += (rows[i].1)(threads, slice) / f64::from(slices);
            }
        }
        let (r2d2, r2d2_nt) = (qps[3], qps[4]);
        for (row, qps) in rows.iter().zip(&qps) {
            println!(
                "{:>7} {:<11} {:<26} {:>10.0} {:>9.2}x {:>9.2}x",
                threads,
                "unprepared",
                row.0,
                qps,
                qps / r2d2,
                qps / r2d2_nt
            );
        }
    }
}

fn bench_pool_core_unprepared(
    url: &str,
    threads: usize,
    cached: bool,
    tx_check: bool,
    secs: Duration,
) -> f64 {
    let pool = pool_core_pool(url, tx_check);
    let p = pool.clone();
    let qps = run(threads, secs, move || {
        let mut conn = p.acquire().expect("acquire");
        let n = 41i32;
        let row = if cached {
            conn.query_one_cached(STMTCACHE_SQL, &[&n])
        } else {
            conn.query_one(STMTCACHE_SQL, &[&n])
        };
        assert_eq!(row.expect("query").get::<_, i32>(0), 42);
    });
    pool.shutdown();
    qps
}

fn bench_r2d2_unprepared(
    url: &str,
    threads: usize,
    test_on_check_out: bool,
    secs: Duration,
) -> f64 {
    let pool = r2d2_pool(url, test_on_check_out);
    let p = pool.clone();
    run(threads, secs, move || {
        let mut conn = p.get().expect("get");
        let n = 41i32;
        let row = conn.query_one(STMTCACHE_SQL, &[&n]).expect("query");
        assert_eq!(row.get::<_, i32>(0), 42);
    })
}
