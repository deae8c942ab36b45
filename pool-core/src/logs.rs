//! The pool's messages: `log` records, or, with the `tracing` feature, `tracing` events.
//!
//! Every message the pool writes (a failed open, the circuit breaker, a suspected leak, a
//! slow close...) goes through these macros: `logs::warn!("{}: ...", name)`, the same
//! arguments as `log::warn!`. Without the `tracing` feature they are `log`'s macros; with
//! it they are `tracing`'s (same level, same text, same target: the module path), so a
//! message raised inside one of the pool's spans (see `trace.rs`) carries that span. A
//! message goes to one of the two, never both: see the `trace` module's docs for a program
//! that wants them in `log` too.

/// One message at `$level` (`error`, `warn`, `info`, `debug`), to `tracing` with the
/// feature, else to `log`.
macro_rules! message {
    ($level:ident, $($arg:tt)+) => {{
        #[cfg(feature = "tracing")]
        ::tracing::$level!($($arg)+);
        #[cfg(not(feature = "tracing"))]
        ::log::$level!($($arg)+);
    }};
}

macro_rules! error_ {
    ($($arg:tt)+) => { $crate::logs::message!(error, $($arg)+) };
}
macro_rules! warn_ {
    ($($arg:tt)+) => { $crate::logs::message!(warn, $($arg)+) };
}
macro_rules! info_ {
    ($($arg:tt)+) => { $crate::logs::message!(info, $($arg)+) };
}
macro_rules! debug_ {
    ($($arg:tt)+) => { $crate::logs::message!(debug, $($arg)+) };
}

// Named like `log`'s (`logs::warn!`); defined with a suffix, since `warn` is also a
// built-in attribute's name.
pub(crate) use {debug_ as debug, error_ as error, info_ as info, message, warn_ as warn};
