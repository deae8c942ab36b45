//! Helpers the workspace's tests share, so each crate's tests check errors the same way
//! and skip the same way.
//!
//! Every error in the workspace says only its own part in `Display` and returns its cause
//! from `source()`. The helpers at the root read that chain and check the rule;
//! [`services`] is the skip rule for tests that need a server, [`logs`] a logger that keeps
//! every record, [`wait`] the poll-until-true helpers ([`eventually`], [`wait_for`]),
//! [`names`] names unique to a process and call, [`temp`] self-removing temporary
//! directories, [`rng`] a replayable random generator, [`watchdog`] a test body that
//! fails instead of hanging, [`all_timeouts_max!`] a pool configuration with every timeout
//! at `Duration::MAX`, [`pki`] (feature `pki`) throwaway certificates for TLS tests.

use std::error::Error;
use std::io::Write;

pub mod logs;
pub mod names;
#[cfg(feature = "pki")]
pub mod pki;
pub mod rng;
pub mod services;
pub mod temp;
pub mod timeouts;
pub mod wait;
pub mod watchdog;

pub use logs::{captured_logs, install_logger};
pub use names::{unique, unique_ident};
pub use rng::Rng;
pub use services::{closed_port, services_required, skip};
pub use temp::TempDir;
pub use wait::{eventually, wait_for};

/// Writes `msg` and a newline to the process's stderr directly (not through `eprintln!`),
/// so the test harness's output capture does not swallow it: reports and skips must be
/// seen.
pub fn loud(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(msg.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
}

/// The messages of `e`'s `source()` chain, outermost first: what a report (`{:#}` with
/// anyhow) shows, one message per error.
pub fn error_chain(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut next = e.source();
    while let Some(err) = next {
        out.push(err.to_string());
        next = err.source();
    }
    out
}

/// The chain, joined with ": " (for `contains` checks and failure messages).
pub fn chain_text(e: &(dyn Error + 'static)) -> String {
    error_chain(e).join(": ")
}

/// No message in `e`'s chain contains the text of a message after it: an error that returns
/// its cause from `source()` does not repeat the cause in its `Display`. Every message is
/// non-empty.
pub fn assert_no_repeated_causes(e: &(dyn Error + 'static)) {
    assert_no_repeated_causes_except(e, |_| false);
}

/// [`assert_no_repeated_causes`], except that a link for which `pass_through` is true may
/// display exactly its direct cause's text (an upstream error that displays its inner
/// error and also returns it as `source()`, such as the `redis` crate's `RedisError`).
pub fn assert_no_repeated_causes_except(
    e: &(dyn Error + 'static),
    pass_through: impl Fn(&(dyn Error + 'static)) -> bool,
) {
    let mut links = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        links.push(err);
        next = err.source();
    }
    for (i, outer) in links.iter().enumerate() {
        let outer_text = outer.to_string();
        for (j, inner) in links.iter().enumerate().skip(i + 1) {
            let inner_text = inner.to_string();
            let allowed = j == i + 1 && outer_text == inner_text && pass_through(*outer);
            assert!(
                !inner_text.is_empty() && (allowed || !outer_text.contains(&inner_text)),
                "{outer_text:?} repeats its cause {inner_text:?} (chain: {:?})",
                error_chain(e)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Wrap(&'static str, std::io::Error);
    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.1)
        }
    }

    #[test]
    fn a_chain_that_says_each_thing_once_passes() {
        let e = Wrap("could not connect", std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), ["could not connect", "refused"]);
        assert_eq!(chain_text(&e), "could not connect: refused");
        assert_no_repeated_causes(&e);
    }

    #[test]
    #[should_panic(expected = "repeats its cause")]
    fn a_message_that_repeats_its_cause_fails() {
        assert_no_repeated_causes(&Wrap(
            "could not connect: refused",
            std::io::Error::other("refused"),
        ));
    }

    #[test]
    fn a_declared_pass_through_may_equal_its_cause() {
        let e = Wrap("refused", std::io::Error::other("refused"));
        assert_no_repeated_causes_except(&e, |l| l.is::<Wrap>());
    }
}
