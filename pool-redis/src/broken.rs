//! The "must not be reused" flag shared by the single-node and cluster wrappers.

use redis::RedisResult;

use crate::connection::breaks_stream;

/// Why a wrapped connection must not be reused, once something said so.
#[derive(Debug, Default)]
pub(crate) struct BrokenFlag(Option<String>);

impl BrokenFlag {
    /// Whether it was marked.
    pub(crate) fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The reason it was marked, or `closed` when the client library closed the socket.
    pub(crate) fn reason(&self, open: bool, closed: &'static str) -> Option<&str> {
        match &self.0 {
            Some(why) => Some(why),
            None if !open => Some(closed),
            None => None,
        }
    }

    /// Marks it (the first reason wins); `what` names the connection kind in the log.
    pub(crate) fn mark(&mut self, what: &str, reason: impl Into<String>) {
        if self.0.is_none() {
            let reason = reason.into();
            log::debug!("{what} marked broken: {reason}");
            self.0 = Some(reason);
        }
    }

    /// Marks it when a request's error may have desynchronised the reply stream (I/O,
    /// timeout, protocol) or the socket is closed; server error replies do not.
    pub(crate) fn track<T>(&mut self, what: &str, result: &RedisResult<T>, open: bool) {
        if let Err(e) = result {
            if breaks_stream(e) || !open {
                self.mark(what, format!("{}: {e}", e.category()));
            }
        }
    }
}
