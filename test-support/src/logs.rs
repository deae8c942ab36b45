//! A logger that keeps every record, so tests can look for what was (or was not) logged:
//! a password must never show, a failure must be reported.

use std::sync::{Mutex, OnceLock};

static LOGS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

struct Capture;

static CAPTURE: Capture = Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if let Some(m) = LOGS.get() {
            m.lock().unwrap_or_else(|p| p.into_inner()).push(line);
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger at `Trace`, for every crate (drivers included), once per
/// test binary. A binary that installed another logger first captures nothing.
pub fn install_logger() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        LOGS.get_or_init(|| Mutex::new(Vec::new()));
        if log::set_logger(&CAPTURE).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
    });
}

/// Every record captured so far, as `LEVEL target message` (installs the logger if no
/// test did yet).
pub fn captured_logs() -> Vec<String> {
    install_logger();
    LOGS.get()
        .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()).clone())
        .unwrap_or_default()
}
