//! The dashboard example (`examples/dashboard/`) in a real browser: headless Chromium
//! opens its page while the load runs and the server is broken and healed, the charts
//! must have drawn, and the numbers on the page must be the pool's own `statistics()`.
//! A screenshot is saved (its path is printed).
//!
//! Needs `chromium` (Debian's package; `.ci/run` installs it) or the browser named by
//! `CHROMIUM`; without one the test is skipped loudly, or fails under
//! `POOL_TEST_REQUIRE_SERVICES=1`.
//!
//! ```text
//! cargo test -p pool-core --test dashboard
//! DASHBOARD_SCREENSHOT=docs/dashboard.png cargo test -p pool-core --test dashboard  # the README's picture
//! ```
//!
//! The example's modules are compiled into this test (the same files), so the test holds
//! the very pool the page shows.

#[allow(dead_code)]
#[path = "../examples/dashboard/app.rs"]
mod app;
#[path = "../examples/dashboard/history.rs"]
mod history;
#[allow(dead_code)]
#[path = "../examples/dashboard/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../examples/demo/protocol.rs"]
mod protocol;
#[allow(dead_code)]
#[path = "../examples/demo/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "../examples/demo/workload.rs"]
mod workload;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use app::{Dashboard, Options};
use test_support::watchdog::within;
use test_support::{skip, TempDir};

/// How long one Chromium run may take before it counts as hung (it is killed).
const BROWSER_LIMIT: Duration = Duration::from_secs(90);
/// Virtual time the page gets before the DOM is dumped or the screenshot taken: enough
/// for a dozen polls of `/stats` (one every 250 ms).
const VIRTUAL_TIME_MS: u32 = 3000;

#[test]
fn the_page_draws_the_pool_and_shows_its_statistics() {
    let Some(browser) = find_chromium() else {
        skip(
            "dashboard",
            "no chromium on PATH (nor CHROMIUM set)",
            "install it (apt-get install chromium)",
        );
        return;
    };
    within(Duration::from_secs(240), "the dashboard test", move || {
        check_dashboard(&browser)
    });
}

#[test]
fn the_page_answers_its_own_address_and_origin_only() {
    within(Duration::from_secs(60), "the origin checks", || {
        let dashboard = Dashboard::start(&Options {
            port: 0,
            threads: 2,
        })
        .expect("the dashboard starts");
        let addr = addr_of(&dashboard);
        let get = |path: &str, host: &str| {
            request(
                addr,
                &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            )
        };
        let page = get("/", &addr.to_string());
        assert!(page.starts_with("HTTP/1.1 200"), "{page}");
        assert!(page.contains("<svg id=\"chart-connections\""));
        assert!(
            !page.contains("src=\"http") && !page.contains("href=\"http"),
            "no external assets"
        );
        let stats = get("/stats", &format!("localhost:{}", addr.port()));
        assert!(
            stats.starts_with("HTTP/1.1 200") && stats.contains("\"max_size\":6"),
            "{stats}"
        );
        // A name that resolves to 127.0.0.1 (DNS rebinding) is not this server's name.
        let rebound = get("/stats", &format!("rebind.example:{}", addr.port()));
        assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
        // Controls: POST only, and not from another site's page.
        let control = |method: &str, origin: &str| {
            request(
                addr,
                &format!("{method} /break HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\r\n"),
            )
        };
        assert!(control("GET", &format!("http://{addr}")).starts_with("HTTP/1.1 405"));
        let foreign = control("POST", "http://evil.example");
        assert!(foreign.starts_with("HTTP/1.1 403"), "{foreign}");
        let own = control("POST", &format!("http://{addr}"));
        assert!(
            own.starts_with("HTTP/1.1 200") && own.contains("server down"),
            "{own}"
        );
        let bad = request(
            addr,
            &format!("POST /load?threads=x HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
        );
        assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
        dashboard.stop();
    });
}

fn check_dashboard(browser: &Path) {
    let dashboard = Dashboard::start(&Options {
        port: 0,
        threads: 12,
    })
    .expect("the dashboard starts");
    let url = dashboard.url();
    let addr = addr_of(&dashboard);

    // A story for the charts: load, the server broken, healed, load again.
    thread::sleep(Duration::from_secs(3));
    assert!(post(addr, "/break").starts_with("HTTP/1.1 200"));
    thread::sleep(Duration::from_secs(2));
    assert!(post(addr, "/heal").starts_with("HTTP/1.1 200"));
    thread::sleep(Duration::from_secs(3));

    let profile = TempDir::new("dashboard-chromium");
    let shot = screenshot_path();
    let out = run_chromium(
        browser,
        &profile,
        &[&format!("--screenshot={}", shot.display()), &url],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}); chromium said:\n{out}",
            shot.display()
        )
    });
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
    test_support::loud(&format!("dashboard screenshot: {}", shot.display()));

    // Quiet the pool, so that the numbers the page shows are still the pool's numbers
    // when the test reads them.
    assert!(post(addr, "/load?threads=0").starts_with("HTTP/1.1 200"));
    let quiet = wait_quiet(&dashboard);
    let dom = run_chromium(browser, &profile, &["--dump-dom", &url]);
    let after = dashboard.pool().statistics();
    assert_eq!(
        (quiet.total_acquired, quiet.total_connections),
        (after.total_acquired, after.total_connections),
        "the pool stayed quiet while the page was read"
    );

    // The charts drew: every series has a line through the history.
    let samples: usize = attr(&dom, "data-samples").expect("the page drew (data-samples)");
    assert!(
        samples >= 20,
        "{samples} samples drawn, 8 s of history expected"
    );
    for series in [
        "open", "idle", "in_use", "waiting", "p50", "p95", "p99", "acquires",
    ] {
        let d = path_of(&dom, series).unwrap_or_else(|| panic!("no {series} line in:\n{dom}"));
        assert!(d.matches('L').count() + 1 >= samples, "{series}: {d}");
    }
    // The text is statistics().
    let s = &after;
    let expected: [(&str, String); 10] = [
        ("open", s.total_connections.to_string()),
        ("idle", s.idle_connections.to_string()),
        ("in_use", s.active_connections.to_string()),
        ("waiting", s.waiting_requests.to_string()),
        ("max_size", s.max_size.to_string()),
        ("total_acquired", s.total_acquired.to_string()),
        ("total_released", s.total_released.to_string()),
        ("total_timeouts", s.total_timeouts.to_string()),
        ("total_create_failures", s.total_create_failures.to_string()),
        (
            "average_wait",
            pool_core::HumanDuration(s.average_wait_time).to_string(),
        ),
    ];
    for (name, want) in expected {
        assert_eq!(
            stat(&dom, name).as_deref(),
            Some(want.as_str()),
            "{name} on the page"
        );
    }
    // The story is in the numbers: the break failed opens, the load acquired a lot.
    assert!(s.total_create_failures > 0 && s.total_acquired > 100, "{s}");
    // The server never had more sockets than max_size.
    let peak: usize = stat(&dom, "peak_sockets").unwrap().parse().unwrap();
    assert!(peak >= 1 && peak <= s.max_size, "peak {peak}");

    let summary = dashboard.stop();
    assert!(
        summary.contains("every connection closed at shutdown: true"),
        "{summary}"
    );
}

/// `chromium` / `chromium-browser` on PATH, or `CHROMIUM`.
fn find_chromium() -> Option<PathBuf> {
    if let Some(named) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(named));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Where the screenshot goes: `DASHBOARD_SCREENSHOT` (relative to the workspace), or the
/// test's scratch directory under `target/`.
fn screenshot_path() -> PathBuf {
    match std::env::var_os("DASHBOARD_SCREENSHOT") {
        Some(p) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
    }
}

/// Runs headless Chromium on `args` (after the common flags); returns its stdout, with
/// its stderr after it when it failed. Killed after [`BROWSER_LIMIT`].
fn run_chromium(browser: &Path, profile: &TempDir, args: &[&str]) -> String {
    let mut command = Command::new(browser);
    command
        .arg("--headless")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--no-default-browser-check")
        .arg("--no-proxy-server")
        .arg("--hide-scrollbars")
        .arg("--window-size=1400,900")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={VIRTUAL_TIME_MS}"));
    if is_root() {
        command.arg("--no-sandbox"); // Chromium refuses to run as root with its sandbox
    }
    command.args(args).stdin(Stdio::null());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", browser.display()));
    // Read both pipes on threads (a full pipe must not stall the browser); its helper
    // processes may keep them open, so the reads are waited for with a bound too.
    let read = |mut pipe: Box<dyn Read + Send>| {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        rx
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + BROWSER_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("HANG: chromium {args:?} still running after {BROWSER_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(50));
    };
    let out = stdout
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    let err = stderr
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    assert!(status.success(), "chromium {args:?}: {status}\n{err}");
    out
}

#[cfg(unix)]
fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}

/// Where the page is served.
fn addr_of(dashboard: &Dashboard) -> SocketAddr {
    let url = dashboard.url();
    url["http://".len()..url.len() - 1].parse().unwrap()
}

/// A control request as the page sends it; returns the response.
fn post(addr: SocketAddr, path: &str) -> String {
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Content-Length: 0\r\n\r\n"
        ),
    )
}

/// Sends `raw` (a whole request head) and returns the whole response.
fn request(addr: SocketAddr, raw: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(raw.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("the response");
    response
}

/// Waits (bounded) until no connection is in use, nobody waits and nothing is being
/// opened, and the counters stopped moving; returns the statistics then.
fn wait_quiet(dashboard: &Dashboard) -> pool_core::PoolStatistics {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = dashboard.pool().statistics();
    loop {
        thread::sleep(Duration::from_millis(300));
        let now = dashboard.pool().statistics();
        let quiet = now.active_connections == 0
            && now.waiting_requests == 0
            && now.opening_connections == 0
            && now.total_acquired == last.total_acquired
            && now.total_connections == last.total_connections;
        if quiet {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the pool did not go quiet: {now}"
        );
        last = now;
    }
}

/// The text of the first element with `data-stat="name"`.
fn stat(dom: &str, name: &str) -> Option<String> {
    let at = dom.find(&format!("data-stat=\"{name}\""))?;
    let rest = &dom[at..];
    let start = rest.find('>')? + 1;
    let end = rest[start..].find('<')?;
    Some(rest[start..start + end].to_owned())
}

/// `<body>`'s attribute `name`, parsed.
fn attr<T: std::str::FromStr>(dom: &str, name: &str) -> Option<T> {
    let body = &dom[dom.find("<body")?..];
    let body = &body[..body.find('>')?];
    let at = body.find(&format!("{name}=\""))? + name.len() + 2;
    body[at..at + body[at..].find('"')?].parse().ok()
}

/// The `d` of the chart line of `series`.
fn path_of<'a>(dom: &'a str, series: &str) -> Option<&'a str> {
    let at = dom.find(&format!("data-series=\"{series}\""))?;
    let rest = &dom[at..];
    let d = rest.find(" d=\"")? + 4;
    Some(&rest[d..d + rest[d..].find('"')?])
}
