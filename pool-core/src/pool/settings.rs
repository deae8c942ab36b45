//! [`PoolBuilder`]'s settings: the same setters as [`PoolConfigBuilder`](crate::PoolConfigBuilder)'s, made from the
//! same list (`config::settings!`), so that `ConnectionPool::builder(factory).max_size(8)`
//! needs no `PoolConfig` of its own. Each forwards to the config builder the pool builder
//! holds; `build()` checks them.

use std::time::Duration;

use super::PoolBuilder;
use crate::config::settings;
use crate::{AdaptiveSizing, ConnectionFactory};

/// One `PoolBuilder` method per setting of `settings!`, with a short doc that points at
/// the config builder's (the meaning and the default are written once, there).
macro_rules! forward {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) |$c:ident| $set:expr;)*) => {
        impl<F: ConnectionFactory> PoolBuilder<F> {
            $(
                #[doc = concat!(
                    "Sets `", stringify!($name), "`, as [`PoolConfigBuilder::",
                    stringify!($name), "`](crate::PoolConfigBuilder::", stringify!($name),
                    ") does (its docs say what it means and its default)."
                )]
                pub fn $name(mut self, $($arg: $ty),*) -> Self {
                    self.config = self.config.$name($($arg),*);
                    self
                }
            )*
        }
    };
}
settings!(forward);

impl<F: ConnectionFactory> PoolBuilder<F> {
    /// The old name of [`create_timeout`](Self::create_timeout), as
    /// [`PoolConfigBuilder::connection_timeout`](crate::PoolConfigBuilder::connection_timeout): it sets `create_timeout`. In r2d2, bb8 and
    /// HikariCP this name is how long `get()` waits: that is
    /// [`wait_timeout`](Self::wait_timeout) here.
    ///
    /// ```compile_fail
    /// #![deny(deprecated)]
    /// # use std::time::Duration;
    /// # use pool_core::{ConnectionFactory, ConnectionPool};
    /// # struct Nop;
    /// # impl ConnectionFactory for Nop {
    /// #     type Connection = (); type Error = std::io::Error;
    /// #     fn create(&self, _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// #     fn validate(&self, _: &mut (), _: Duration) -> Result<(), std::io::Error> { Ok(()) }
    /// # }
    /// let b = ConnectionPool::builder(Nop).connection_timeout(Duration::from_secs(1));
    /// ```
    #[deprecated(
        note = "in r2d2, bb8 and HikariCP `connection_timeout` is how long `get()` waits: \
                that is `wait_timeout` here. This alias sets `create_timeout` (the time \
                allowed to open one connection); call `create_timeout` or `wait_timeout`"
    )]
    pub fn connection_timeout(self, d: Duration) -> Self {
        self.create_timeout(d)
    }
}
