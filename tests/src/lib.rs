//! Shared support for the workspace's integration tests: a fault-injecting TCP proxy
//! ([`proxy`]), the services behind it ([`services`], [`http_server`], a throwaway
//! PostgreSQL in [`pg_cluster`]), process gauges ([`sys`]) and the chaos scenario runner
//! ([`chaos`]). The README's code blocks are this crate's doctests ([`readme`], `build.rs`).

pub mod backends;
pub mod chaos;
pub mod http_server;
pub mod pg_cluster;
pub mod proxy;
pub mod readme;
pub mod services;
pub mod sys;

pub use proxy::FaultProxy;

/// Writes to the process's stderr directly, past the test harness's output capture.
pub use test_support::loud;

/// The README's Rust code blocks, compiled and run as doctests: `cargo test --workspace`, or
/// alone `cargo test -p integration-tests --doc`. This crate owns them because it depends on
/// every backend. The text is `build.rs`'s copy of the README, where a block that needs a
/// test server first checks that it is there ([`readme::server_up`]).
#[cfg(doctest)]
#[doc = include_str!(concat!(env!("OUT_DIR"), "/README.md"))]
pub struct ReadmeDoctests;
