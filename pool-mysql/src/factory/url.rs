//! What the factory shows of a URL: the target without the password
//! ([`describe_target`]), and the passwords a URL carries, to scrub them from any text
//! derived from it (a driver's parse error, say).

use mysql::Opts;
use pool_core::backend::percent_decode;

/// The passwords a URL carries (userinfo and `password=`), raw and percent-decoded, to be
/// scrubbed from any text derived from it.
pub(super) fn secrets_in(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if let Some((_, pass)) = userinfo.split_once(':') {
            out.push(pass.to_owned());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        for pair in query.split(['&', '#']) {
            if let Some(("password", pass)) = pair.split_once('=') {
                out.push(pass.to_owned());
            }
        }
    }
    let decoded: Vec<String> = out.iter().map(|p| percent_decode(p)).collect();
    out.extend(decoded);
    out.retain(|p| !p.is_empty());
    out
}

/// `text` with every secret replaced by `<redacted>`.
pub(super) fn scrub(text: String, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text, |t, s| t.replace(s.as_str(), "<redacted>"))
}

/// `mysql://user@host:port/db` (or the socket path), from the options: never the password.
pub(super) fn describe_target(opts: &Opts) -> String {
    let mut s = String::from("mysql://");
    if let Some(user) = opts.get_user() {
        s.push_str(user);
        s.push('@');
    }
    let host = opts.get_ip_or_hostname();
    if host.contains(':') && !host.starts_with('[') {
        s.push_str(&format!("[{host}]:{}", opts.get_tcp_port()));
    } else {
        s.push_str(&format!("{host}:{}", opts.get_tcp_port()));
    }
    if let Some(db) = opts.get_db_name() {
        s.push('/');
        s.push_str(db);
    }
    if let Some(socket) = opts.get_socket() {
        s.push_str(&format!(" (socket {socket})"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_and_scrubbed() {
        let s = secrets_in("mysql://app:p%40ss@db:3306/x?password=other&ssl=1");
        assert!(s.contains(&"p%40ss".to_owned()));
        assert!(s.contains(&"p@ss".to_owned()));
        assert!(s.contains(&"other".to_owned()));
        assert_eq!(
            scrub("user app p@ss other".into(), &s),
            "user app <redacted> <redacted>"
        );
        assert!(secrets_in("mysql://root@127.0.0.1/test").is_empty());
    }
}
