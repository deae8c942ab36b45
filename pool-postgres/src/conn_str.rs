//! Connection strings: the two libpq forms, with the TLS options the driver does not know.
//!
//! The driver (`tokio-postgres`) understands `sslmode` values `disable`, `prefer` and
//! `require` only, and no `sslrootcert`. libpq users write `sslmode=verify-full
//! sslrootcert=/path/ca.pem`, so those two keys are taken out here, handled by this crate,
//! and the rest is handed to the driver's parser.

use std::path::PathBuf;

use crate::error::ConfigError;
use crate::tls::SslMode;

/// What this crate takes out of a connection string before the driver parses the rest.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    pub(crate) sslmode: Option<SslMode>,
    pub(crate) sslrootcert: Option<PathBuf>,
}

/// Parses a connection string (`postgres://...`, `postgresql://...` or `key=value ...`).
pub(crate) fn parse(s: &str) -> Result<(postgres::Config, Extracted), ConfigError> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(ConfigError::Parse {
            reason: "the connection string is empty".into(),
        });
    }
    let (rest, extracted) = if is_url(trimmed) {
        split_url(trimmed)?
    } else {
        split_key_value(trimmed)?
    };
    let config = rest
        .parse::<postgres::Config>()
        .map_err(|e| ConfigError::Parse {
            reason: scrub(&driver_reason(&e), s),
        })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(ConfigError::Parse {
            reason: "no host given (write host=... or postgres://user@host/db)".into(),
        });
    }
    Ok((config, extracted))
}

fn is_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

/// The driver's parse error, with its cause (`invalid connection string: invalid value for
/// option `port``).
fn driver_reason(e: &postgres::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Belt and braces: the driver's messages name options, not values, but if a message ever
/// quoted a piece of the input, a password could come along. Drop any message that
/// contains a password we can find in the input.
fn scrub(reason: &str, input: &str) -> String {
    match find_password(input) {
        Some(pw) if !pw.is_empty() && reason.contains(pw.as_str()) => {
            "the connection string is malformed (details withheld: they would show the password)"
                .into()
        }
        _ => reason.to_owned(),
    }
}

/// The password in a connection string, as written (best effort, for scrubbing only).
fn find_password(input: &str) -> Option<String> {
    let s = input.trim();
    if is_url(s) {
        let after = &s[s.find("://")? + 3..];
        let creds = &after[..after.find('@')?];
        let pw = creds.split_once(':')?.1;
        Some(pw.to_owned())
    } else {
        let pairs = tokenize(s).ok()?;
        pairs
            .into_iter()
            .find(|(k, _)| k == "password")
            .map(|(_, v)| v)
    }
}

fn take_ssl_param(key: &str, value: &str, extracted: &mut Extracted) -> Result<bool, ConfigError> {
    match key {
        "sslmode" => {
            extracted.sslmode = Some(value.parse()?);
            Ok(true)
        }
        "sslrootcert" => {
            extracted.sslrootcert = Some(PathBuf::from(value));
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn split_url(s: &str) -> Result<(String, Extracted), ConfigError> {
    let mut extracted = Extracted::default();
    // The driver takes everything up to the first '@' as credentials; the query string
    // starts at the first '?' after that.
    let scheme_end = s.find("://").map_or(0, |i| i + 3);
    let search_from = s[scheme_end..]
        .find('@')
        .map_or(scheme_end, |i| scheme_end + i + 1);
    let Some(q) = s[search_from..].find('?').map(|i| search_from + i) else {
        return Ok((s.to_owned(), extracted));
    };
    let (head, query) = (&s[..q], &s[q + 1..]);
    let mut kept = Vec::new();
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = param.split_once('=') else {
            // Not named: it may be the tail of a password with an unescaped `&`.
            let at = param.as_ptr() as usize - s.as_ptr() as usize;
            return Err(ConfigError::Parse {
                reason: format!(
                    "a URL parameter (at byte {at}) has no `=value` (escape `&` in a value \
                     as %26)"
                ),
            });
        };
        let value = percent_decode(value).ok_or_else(|| ConfigError::InvalidOption {
            option: key.to_owned(),
            reason: "bad percent-encoding".into(),
        })?;
        if !take_ssl_param(key, &value, &mut extracted)? {
            kept.push(param);
        }
    }
    let rest = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((rest, extracted))
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn split_key_value(s: &str) -> Result<(String, Extracted), ConfigError> {
    let mut extracted = Extracted::default();
    let mut rest = String::with_capacity(s.len());
    for (key, value) in tokenize(s)? {
        if take_ssl_param(&key, &value, &mut extracted)? {
            continue;
        }
        if !rest.is_empty() {
            rest.push(' ');
        }
        rest.push_str(&key);
        rest.push_str("='");
        for c in value.chars() {
            if c == '\'' || c == '\\' {
                rest.push('\\');
            }
            rest.push(c);
        }
        rest.push('\'');
    }
    Ok((rest, extracted))
}

/// Splits `key = value key2='quoted \' value'` into pairs, as libpq and the driver do.
/// Errors name positions and keys, never values.
fn tokenize(s: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    let mut it = s.char_indices().peekable();
    loop {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = it.peek() else {
            return Ok(pairs);
        };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if it.next_if(|(_, c)| *c == '=').is_none() {
            // The word is not named: it is most often the rest of an unquoted value with a
            // space in it (`password=correct horse`), a piece of a password.
            return Err(ConfigError::Parse {
                reason: format!(
                    "expected `=` after the word at byte {start}; write key=value pairs \
                     separated by spaces (quote a value with spaces: key='a b'), or a \
                     postgres:// URL"
                ),
            });
        }
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if it.next_if(|(_, c)| *c == '\'').is_some() {
            let mut closed = false;
            while let Some((_, c)) = it.next() {
                match c {
                    '\'' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some((_, c2)) = it.next() {
                            value.push(c2);
                        }
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(ConfigError::Parse {
                    reason: format!("unterminated quoted value for `{}`", truncate(&key)),
                });
            }
        } else {
            while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some((_, c2)) = it.next() {
                        value.push(c2);
                    }
                } else {
                    value.push(c);
                }
            }
            if value.is_empty() {
                return Err(ConfigError::Parse {
                    reason: format!("missing value for `{}`", truncate(&key)),
                });
            }
        }
        pairs.push((key, value));
    }
}

/// Appends `-c name=value` to the startup `options`, escaped the way the server splits
/// them (whitespace separates, backslash escapes).
pub(crate) fn push_startup_setting(config: &mut postgres::Config, name: &str, value: &str) {
    let mut opts = config.get_options().unwrap_or("").to_owned();
    if !opts.is_empty() {
        opts.push(' ');
    }
    opts.push_str("-c ");
    for c in name
        .chars()
        .chain(std::iter::once('='))
        .chain(value.chars())
    {
        if c.is_whitespace() || c == '\\' {
            opts.push('\\');
        }
        opts.push(c);
    }
    config.options(&opts);
}

/// `postgres://user@host:port,host2:port/db`, from a config (never the password).
pub(crate) fn describe_target(config: &postgres::Config) -> String {
    let mut s = String::from("postgres://");
    if let Some(user) = config.get_user() {
        s.push_str(user);
        s.push('@');
    }
    let ports = config.get_ports();
    let port_at = |i: usize| match ports.len() {
        0 => 5432,
        1 => ports[0],
        _ => ports.get(i).copied().unwrap_or(5432),
    };
    let hosts: Vec<String> = if config.get_hosts().is_empty() {
        config
            .get_hostaddrs()
            .iter()
            .enumerate()
            .map(|(i, a)| match a {
                std::net::IpAddr::V6(a) => format!("[{a}]:{}", port_at(i)),
                std::net::IpAddr::V4(a) => format!("{a}:{}", port_at(i)),
            })
            .collect()
    } else {
        config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                postgres::config::Host::Tcp(name) if name.contains(':') => {
                    format!("[{name}]:{}", port_at(i))
                }
                postgres::config::Host::Tcp(name) => format!("{name}:{}", port_at(i)),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => format!("{}:{}", path.display(), port_at(i)),
            })
            .collect()
    };
    s.push_str(&hosts.join(","));
    if let Some(db) = config.get_dbname() {
        s.push('/');
        s.push_str(db);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_with_ssl_params() {
        let (cfg, ex) = parse(
            "postgres://u:p%40ss@h1:5432,h2:5433/db?sslmode=verify-full&target_session_attrs=read-write&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(ex.sslmode, Some(SslMode::VerifyFull));
        assert_eq!(ex.sslrootcert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(cfg.get_hosts().len(), 2);
        assert_eq!(cfg.get_ports(), &[5432, 5433]);
        assert_eq!(cfg.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(cfg.get_dbname(), Some("db"));
    }

    #[test]
    fn key_value_with_quotes() {
        let (cfg, ex) = parse(
            "host=localhost  dbname = 'my db' password='it\\'s' sslmode=disable application_name=x",
        )
        .unwrap();
        assert_eq!(ex.sslmode, Some(SslMode::Disable));
        assert_eq!(cfg.get_dbname(), Some("my db"));
        assert_eq!(cfg.get_password(), Some(&b"it's"[..]));
        assert_eq!(cfg.get_application_name(), Some("x"));
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let secret = "Sup3rS3cret";
        let inputs = [
            "",
            "   ",
            "host",
            "host=",
            "host='unterminated",
            "postgres://",
            "postgres://u:Sup3rS3cret@h:notaport/db",
            "postgres://u:Sup3rS3cret@[::1/db",
            "postgres://u:Sup3rS3cret@h/db?sslmode=bogus",
            "postgres://u:Sup3rS3cret@h/db?noequals",
            "postgres://u:Sup3rS3cret@h/db?x=%zz",
            "host=h password=Sup3rS3cret port=99999999",
            "host=h password=Sup3rS3cret frobnicate=1",
            "host=h password='Sup3rS3cret' sslmode=verify-fullish",
            "dbname=x password=Sup3rS3cret",
            // An unquoted password with a space: the word after it is no key, and was
            // named in the error.
            "host=h password=correct Sup3rS3cret",
            "host=h password='ab'Sup3rS3cret'",
            // An unescaped `&` in a URL password parameter.
            "postgres://u@h/db?password=ab&Sup3rS3cret",
            "=",
            "'",
            "postgresql://[::1",
            "\u{0}=\u{0}",
        ];
        for input in inputs {
            let err = parse(input).expect_err(input);
            let text = format!("{err} {err:?}");
            assert!(!text.contains(secret), "{input:?} leaked: {text}");
        }
    }

    #[test]
    fn startup_settings_escape() {
        let mut cfg = postgres::Config::new();
        push_startup_setting(&mut cfg, "search_path", "a, b");
        push_startup_setting(&mut cfg, "statement_timeout", "5000");
        assert_eq!(
            cfg.get_options(),
            Some("-c search_path=a,\\ b -c statement_timeout=5000")
        );
    }
}
