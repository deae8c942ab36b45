//! The `tracing` feature: the spans (`pool.acquire`, `pool.create`, `pool.validate`,
//! `pool.close`) with their fields and parents, and the pool's messages as `tracing`
//! events inside them (and not `log` records).
//!
//! The pool's spans open on its own threads (creators, checkers, validators, closers), so
//! the subscriber is the global one: a small hand-written `Subscriber` that keeps every
//! span and event, installed once for this binary. Each test names its pool and reads only
//! what carries that name.
//!
//! Run: `cargo test -p pool-core --features tracing --test tracing`.

#![cfg(feature = "tracing")]

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pool_core::trace;
use pool_core::PoolError;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::span::Current;

use common::*;

/// A span as the subscriber saw it: its fields as text (a `&str` without quotes).
#[derive(Clone, Debug)]
struct SpanRec {
    name: &'static str,
    meta: &'static Metadata<'static>,
    fields: BTreeMap<String, String>,
    parent: Option<u64>,
    thread: String,
}

#[derive(Clone, Debug)]
struct EventRec {
    level: Level,
    target: String,
    message: String,
    span: Option<u64>,
}

#[derive(Default)]
struct Inner {
    next_id: AtomicU64,
    spans: Mutex<HashMap<u64, SpanRec>>,
    events: Mutex<Vec<EventRec>>,
}

/// The subscriber: everything enabled, spans never freed (a test binary's worth).
#[derive(Clone, Default)]
struct Capture(Arc<Inner>);

thread_local! {
    /// The spans this thread has entered, innermost last (the contextual parent).
    static STACK: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn contextual() -> Option<u64> {
    STACK.with(|s| s.borrow().last().copied())
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.0.next_id.fetch_add(1, SeqCst) + 1;
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let parent = if attrs.is_root() {
            None
        } else {
            attrs.parent().map(Id::into_u64).or_else(contextual)
        };
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        let rec = SpanRec {
            name: attrs.metadata().name(),
            meta: attrs.metadata(),
            fields,
            parent,
            thread,
        };
        self.0.spans.lock().unwrap().insert(id, rec);
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(rec) = self.0.spans.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = if event.is_root() {
            None
        } else {
            event.parent().map(Id::into_u64).or_else(contextual)
        };
        self.0.events.lock().unwrap().push(EventRec {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            message: fields.remove("message").unwrap_or_default(),
            span,
        });
    }
    /// What `Span::current()` answers (the pool hands it to the checker thread).
    fn current_span(&self) -> Current {
        let spans = self.0.spans.lock().unwrap();
        match contextual().and_then(|id| Some((id, spans.get(&id)?.meta))) {
            Some((id, meta)) => Current::new(Id::from_u64(id), meta),
            None => Current::none(),
        }
    }
    fn enter(&self, span: &Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &Id) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(i) = s.iter().rposition(|&x| x == span.into_u64()) {
                s.remove(i);
            }
        });
    }
}

/// The binary's subscriber (installed by the first test that asks).
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c = Capture::default();
        tracing::subscriber::set_global_default(c.clone()).expect("the only subscriber");
        c
    })
}

impl Capture {
    /// The spans named `name` of pool `pool`, with their ids.
    fn spans(&self, name: &str, pool: &str) -> Vec<(u64, SpanRec)> {
        let mut v: Vec<_> = self
            .0
            .spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s)| {
                s.name == name && s.fields.get("pool.name").map(String::as_str) == Some(pool)
            })
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }
    fn span(&self, id: u64) -> Option<SpanRec> {
        self.0.spans.lock().unwrap().get(&id).cloned()
    }
    /// The events raised inside span `id`.
    fn events_in(&self, id: u64) -> Vec<EventRec> {
        self.0
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.span == Some(id))
            .cloned()
            .collect()
    }
    /// Waits until a span named `name` of `pool` matches `f` (background spans are
    /// recorded by the pool's threads, a moment after what the test can see).
    fn wait_span(&self, name: &str, pool: &str, f: impl Fn(&SpanRec) -> bool) -> (u64, SpanRec) {
        let mut found = None;
        wait_for(
            PATIENCE,
            &format!("a {name} span of {pool} as wanted"),
            || {
                found = self.spans(name, pool).into_iter().find(|(_, s)| f(s));
                found.is_some()
            },
        );
        found.unwrap()
    }
}

fn field<'a>(s: &'a SpanRec, name: &str) -> &'a str {
    s.fields
        .get(name)
        .unwrap_or_else(|| panic!("span {} has no field {name}: {s:?}", s.name))
}

fn millis(s: &SpanRec, name: &str) -> f64 {
    field(s, name)
        .parse()
        .unwrap_or_else(|e| panic!("{name} of {} is not a number ({e}): {s:?}", s.name))
}

#[test]
fn acquire_span_has_pool_name_waited_and_outcome_under_the_callers_span() {
    let c = capture();
    let pool_name = "tr-acquire";
    let (pool, _) = pool_with(cfg(pool_name).min_size(1).build().unwrap());
    let request = tracing::info_span!("request");
    let conn = request.in_scope(|| pool.acquire().expect("a connection"));
    drop(conn);
    let spans = c.spans(trace::ACQUIRE, pool_name);
    assert_eq!(spans.len(), 1, "one acquire, one span: {spans:?}");
    let (_, s) = &spans[0];
    assert_eq!(field(s, "outcome"), "ok");
    assert!(millis(s, "waited_ms") >= 0.0);
    assert!(!s.fields.contains_key("error"), "{s:?}");
    let parent = c
        .span(s.parent.expect("the caller's span is its parent"))
        .unwrap();
    assert_eq!(parent.name, "request");
    // try_acquire has its span too.
    drop(pool.try_acquire().expect("the idle connection"));
    assert_eq!(c.spans(trace::ACQUIRE, pool_name).len(), 2);
    pool.shutdown();
}

#[test]
fn a_timeout_an_exhausted_try_and_a_closed_pool_are_outcomes() {
    let c = capture();
    let pool_name = "tr-timeout";
    let (pool, _) = pool_with(cfg(pool_name).min_size(1).max_size(1).build().unwrap());
    let held = pool.acquire().unwrap();
    let wait = Duration::from_millis(150);
    let e = pool.acquire_timeout(wait).unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert!(matches!(pool.try_acquire(), Err(PoolError::PoolExhausted)));
    drop(held);
    pool.shutdown();
    assert!(matches!(pool.acquire(), Err(PoolError::Closed)));

    let spans = c.spans(trace::ACQUIRE, pool_name);
    let outcomes: Vec<_> = spans.iter().map(|(_, s)| field(s, "outcome")).collect();
    assert_eq!(outcomes, ["ok", "timeout", "exhausted", "closed"]);
    let timed_out = &spans[1].1;
    let waited = millis(timed_out, "waited_ms");
    // At least the timeout (less a coarse-clock tick); generous above.
    assert!(
        (140.0..10_000.0).contains(&waited),
        "waited_ms {waited} for a {} ms timeout",
        wait.as_millis()
    );
    assert_eq!(field(timed_out, "error"), e.to_string());
}

#[test]
fn create_spans_run_on_creators_and_carry_the_failure_event() {
    let c = capture();
    let pool_name = "tr-create";
    let (pool, state) = pool_with(cfg(pool_name).min_size(1).build().unwrap());
    let (id, ok) = c.wait_span(trace::CREATE, pool_name, |s| {
        s.fields.contains_key("took_ms")
    });
    assert_eq!(field(&ok, "outcome"), "ok");
    assert!(millis(&ok, "took_ms") >= 0.0);
    assert!(ok.thread.starts_with("tr-create-create-"), "{}", ok.thread);
    assert_eq!(ok.parent, None);
    // The pool's own message about it is a tracing event inside the span.
    let events = c.events_in(id);
    assert!(
        events.iter().any(|e| e.level == Level::DEBUG
            && e.target == "pool_core::create"
            && e.message.starts_with("tr-create: opened connection")),
        "{events:?}"
    );

    // A failed open: outcome failed, and the warning inside the span says why.
    state.set_create(CREATE_TRANSIENT);
    let _held = pool.acquire().unwrap();
    let _ = pool.acquire_timeout(Duration::from_millis(100)); // one more wanted
    let (id, failed) = c.wait_span(trace::CREATE, pool_name, |s| {
        s.fields.get("outcome").map(String::as_str) == Some("failed")
    });
    assert!(millis(&failed, "took_ms") >= 0.0);
    let mut events = Vec::new();
    wait_for(PATIENCE, "the warning inside the failed create", || {
        events = c.events_in(id);
        events.iter().any(|e| e.level == Level::WARN)
    });
    let warn = events.iter().find(|e| e.level == Level::WARN).unwrap();
    assert!(
        warn.message.contains("could not open a connection")
            && warn.message.contains("fake: connection refused"),
        "{warn:?}"
    );
    pool.shutdown();
}

#[test]
fn validate_spans_on_acquire_in_the_background_and_failed() {
    let c = capture();
    let pool_name = "tr-validate";
    let config = cfg(pool_name)
        .min_size(1)
        .max_size(1)
        .validate_on_acquire(true)
        .validation_skip_window(Duration::ZERO)
        .validation_interval(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let (pool, state) = pool_with(config);

    // On acquire: on a checker thread, a child of the caller's pool.acquire.
    let conn = pool.acquire().unwrap();
    let conn_id = conn.id();
    drop(conn);
    let (acquire, _) = c.spans(trace::ACQUIRE, pool_name).pop().unwrap();
    let (_, on_acquire) = c.wait_span(trace::VALIDATE, pool_name, |s| {
        s.parent == Some(acquire) && s.fields.contains_key("took_ms")
    });
    assert_eq!(field(&on_acquire, "outcome"), "ok");
    assert_eq!(field(&on_acquire, "id"), conn_id.to_string());
    assert!(
        on_acquire.thread.starts_with("tr-validate-check"),
        "{}",
        on_acquire.thread
    );

    // In the background (validation_interval): no parent, a validator thread.
    let (_, background) = c.wait_span(trace::VALIDATE, pool_name, |s| {
        s.parent.is_none() && s.fields.contains_key("took_ms")
    });
    assert_eq!(field(&background, "outcome"), "ok");
    assert!(
        background.thread.starts_with("tr-validate-validate"),
        "{}",
        background.thread
    );

    // A failed check: outcome failed, the pool's DEBUG message with the error inside
    // (raised after the outcome is recorded, before the span ends with `took_ms`).
    state.fail_validate.store(true, SeqCst);
    let (id, failed) = c.wait_span(trace::VALIDATE, pool_name, |s| {
        s.fields.get("outcome").map(String::as_str) == Some("failed")
            && s.fields.contains_key("took_ms")
    });
    assert!(millis(&failed, "took_ms") >= 0.0);
    let events = c.events_in(id);
    assert!(
        events
            .iter()
            .any(|e| e.message.contains("failed validation")
                && e.message.contains("does not answer")),
        "{events:?}"
    );
    pool.shutdown();
}

#[test]
fn close_span_runs_on_the_closer_with_id_and_reason() {
    let c = capture();
    let pool_name = "tr-close";
    let (pool, _) = pool_with(cfg(pool_name).min_size(1).build().unwrap());
    let mut conn = pool.acquire().unwrap();
    let conn_id = conn.id();
    conn.mark_broken();
    drop(conn);
    closes_done(&pool);
    let (id, close) = c.wait_span(trace::CLOSE, pool_name, |s| {
        s.fields.contains_key("took_ms")
    });
    assert_eq!(field(&close, "id"), conn_id.to_string());
    assert_eq!(field(&close, "reason"), "broken");
    assert!(millis(&close, "took_ms") >= 0.0);
    assert!(
        close.thread.starts_with("tr-close-close"),
        "{}",
        close.thread
    );
    let events = c.events_in(id);
    assert!(
        events
            .iter()
            .any(|e| e.message == format!("tr-close: closed connection {conn_id} (broken)")),
        "{events:?}"
    );
    pool.shutdown();
}

#[test]
fn messages_go_to_tracing_not_to_log() {
    let c = capture();
    test_support::install_logger();
    let pool_name = "tr-messages";
    let (pool, state) = pool_with(cfg(pool_name).min_size(0).build().unwrap());
    state.set_create(CREATE_PERMANENT);
    let e = pool
        .acquire_timeout(Duration::from_millis(500))
        .unwrap_err();
    assert!(
        e.to_string().contains("password rejected") || e.connection_error().is_some(),
        "{e}"
    );
    let mut found = None;
    wait_for(PATIENCE, "the permanent failure's ERROR event", || {
        found =
            c.0.events
                .lock()
                .unwrap()
                .iter()
                .find(|e| {
                    e.level == Level::ERROR
                        && e.message
                            .starts_with("tr-messages: could not open a connection (permanent)")
                })
                .cloned();
        found.is_some()
    });
    let logged: Vec<_> = test_support::captured_logs()
        .into_iter()
        .filter(|l| l.contains(pool_name))
        .collect();
    assert!(logged.is_empty(), "also sent to log: {logged:?}");
    pool.shutdown();
}
