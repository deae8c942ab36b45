//! [`RedactedOpts`]: the driver options a factory hands out, with a `Debug` that never
//! prints the password.

use std::fmt;
use std::ops::Deref;

use mysql::Opts;

/// The driver's [`Opts`] of a [`MysqlConnectionFactory`](crate::MysqlConnectionFactory)
/// (from [`opts`](crate::MysqlConnectionFactory::opts)), with a `Debug` that never shows
/// the password.
///
/// `mysql::Opts`'s own `Debug` prints the password in clear, so a stray `{:?}` of it in a
/// log line would leak it. This wrapper derefs to [`Opts`] (every getter works as on the
/// driver's type, and `&RedactedOpts` coerces to `&Opts`), but formats as the target
/// without the password. [`to_opts`](Self::to_opts) takes a copy of the driver's type out,
/// whose `Debug` prints the password again.
///
/// ```
/// let f = pool_mysql::MysqlConnectionFactory::new("mysql://app:s3cret-pw@db.internal/shop")?;
/// let opts = f.opts();
/// assert_eq!(opts.get_user(), Some("app"));
/// assert_eq!(opts.get_pass(), Some("s3cret-pw"));
/// let shown = format!("{opts:?}");
/// assert!(!shown.contains("s3cret-pw"), "{shown}");
/// assert!(shown.contains("db.internal"), "{shown}");
/// # Ok::<(), pool_mysql::ConfigError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RedactedOpts(Opts);

impl RedactedOpts {
    pub(crate) fn new(opts: Opts) -> RedactedOpts {
        RedactedOpts(opts)
    }

    /// A copy of the driver's options (to build another connection or an `OptsBuilder`
    /// from). Its `Debug` prints the password: do not log it.
    pub fn to_opts(&self) -> Opts {
        self.0.clone()
    }
}

impl Deref for RedactedOpts {
    type Target = Opts;

    fn deref(&self) -> &Opts {
        &self.0
    }
}

impl From<RedactedOpts> for Opts {
    fn from(opts: RedactedOpts) -> Opts {
        opts.0
    }
}

impl fmt::Debug for RedactedOpts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.0;
        // Only fields that cannot hold a secret: not the init commands (a `SET PASSWORD`
        // would be one), not the TLS options (a client identity carries its password).
        f.debug_struct("Opts")
            .field("user", &o.get_user())
            .field("pass", &o.get_pass().map(|_| "<redacted>"))
            .field("ip_or_hostname", &o.get_ip_or_hostname())
            .field("tcp_port", &o.get_tcp_port())
            .field("socket", &o.get_socket())
            .field("db_name", &o.get_db_name())
            .field("tls", &o.get_ssl_opts().is_some())
            .field("read_timeout", &o.get_read_timeout())
            .field("write_timeout", &o.get_write_timeout())
            .field("tcp_connect_timeout", &o.get_tcp_connect_timeout())
            .field("prefer_socket", &o.get_prefer_socket())
            .field("compress", &o.get_compress().is_some())
            .field("stmt_cache_size", &o.get_stmt_cache_size())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use crate::MysqlConnectionFactory;

    #[test]
    fn the_opts_a_factory_hands_out_never_show_the_password() {
        for (url, pass) in [
            ("mysql://app:Pw-9f3kQz@127.0.0.1:3306/test", "Pw-9f3kQz"),
            ("mysql://app@127.0.0.1/test?password=Qp-77Zxc", "Qp-77Zxc"),
            ("mariadb://root:p%40ss-wQ7@[::1]/x", "p@ss-wQ7"),
        ] {
            let f = MysqlConnectionFactory::new(url).unwrap();
            assert_eq!(f.opts().get_pass(), Some(pass), "{url}");
            let shown = format!("{:?} {:#?}", f.opts(), f.opts());
            assert!(!shown.contains(pass), "{url}: {shown}");
            assert!(shown.contains("<redacted>"), "{url}: {shown}");
            // The driver's type is still there for whoever asks for it.
            assert_eq!(f.opts().to_opts().get_pass(), Some(pass));
        }
        let f = MysqlConnectionFactory::new("mysql://root@127.0.0.1/test").unwrap();
        assert!(format!("{:?}", f.opts()).contains("pass: None"));
    }
}
