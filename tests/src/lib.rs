//! Shared support for the workspace's integration tests: a fault-injecting TCP proxy
//! ([`proxy`]), the services behind it ([`services`], [`http_server`], a throwaway
//! PostgreSQL in [`pg_cluster`]), process gauges ([`sys`]) and the chaos scenario runner
//! ([`chaos`]).

pub mod backends;
pub mod chaos;
pub mod http_server;
pub mod pg_cluster;
pub mod proxy;
pub mod services;
pub mod sys;

pub use proxy::FaultProxy;

/// Writes to the process's stderr directly, past the test harness's output capture.
pub use test_support::loud;
