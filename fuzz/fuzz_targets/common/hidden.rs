//! The check the connection-string and URL targets share: nothing the crate shows (a
//! config's or factory's `Display`/`Debug`, an error's `Display`/`Debug`) contains a
//! password of the input.
//!
//! A naive `!text.contains(password)` fires spuriously: a password of `a` is in every
//! message, and a password may equal a host name, a word of a message, or another part of
//! the input in another case or escape. So a candidate is checked only when the check
//! cannot fire on anything but a leak:
//!
//! * it is at least [`MIN_LEN`] ASCII letters and digits, and occurs exactly once in the
//!   input (so that occurrence is the password field and nothing else);
//! * that one occurrence is swapped for another string of the same length and shape, and
//!   the swapped input parses the same way (when the original parsed, the swapped one
//!   must parse and carry the swapped password);
//! * what the crate shows for the swapped input (three times: an error may name one of
//!   several unknown parameters at random), and the swapped input itself (escaped,
//!   percent-decoded, lower and upper case), must not contain the candidate: otherwise the
//!   candidate is text the crate shows legitimately.
//!
//! Then the candidate in what the crate shows for the original input can only be the
//! password itself.

/// The shortest password checked.
pub const MIN_LEN: usize = 6;

/// What a target tells the check about its parser.
pub struct Parser<'a> {
    /// Everything the crate shows for an input (Ok or Err).
    pub shown: &'a dyn Fn(&str) -> String,
    /// What the crate parsed out of an input: `None` when it did not parse, `Some(None)`
    /// when it parsed with no password (so nothing in it is a secret the connection would
    /// send), `Some(Some(password))`.
    pub parsed: &'a dyn Fn(&str) -> Option<Option<String>>,
    /// The passwords a scan of the input finds where the crate would look (userinfo,
    /// `password=`), used when the input does not parse.
    pub scanned: &'a dyn Fn(&str) -> Vec<String>,
}

/// Asserts that no password of `input` appears in what `p.shown` gives for it.
pub fn assert_hidden(input: &str, p: &Parser<'_>) {
    let parsed = (p.parsed)(input);
    // When the input parses, the crate says what the password is; when it does not, the
    // scan guesses where it would have been.
    let candidates = match &parsed {
        Some(Some(pass)) => vec![pass.clone()],
        // It parsed, and the connection would send no password: a `password=` the scan
        // would find is part of another field (a user name, say), shown legitimately.
        Some(None) => return,
        None => (p.scanned)(input),
    };
    let mut text = None;
    for pass in candidates {
        let plain = pass.len() >= MIN_LEN && pass.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain || input.matches(pass.as_str()).count() != 1 {
            continue;
        }
        let Some(other) = ['x', 'y', 'z', '7', '8', '9']
            .into_iter()
            .find(|c| !pass.contains(*c))
        else {
            continue;
        };
        let other = other.to_string().repeat(pass.len());
        let swapped = input.replacen(pass.as_str(), &other, 1);
        if parsed.is_some() && (p.parsed)(&swapped) != Some(Some(other.clone())) {
            continue; // the occurrence was not (only) the password field
        }
        let mut legit = format!("{swapped} {swapped:?} {}", percent_decoded(&swapped));
        legit = format!("{legit} {} {}", legit.to_lowercase(), legit.to_uppercase());
        for _ in 0..3 {
            legit.push_str(&(p.shown)(&swapped));
        }
        if legit.contains(pass.as_str()) {
            continue;
        }
        let text = text.get_or_insert_with(|| (p.shown)(input));
        assert!(
            !text.contains(pass.as_str()),
            "the password {pass:?} of {input:?} is shown: {text}"
        );
    }
}

/// The userinfo password and every `password=` query value of a URL.
pub fn scan_url(url: &str) -> Vec<String> {
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
    out
}

/// `%XX` decoded (lossily), as a parser may show a part of the URL.
pub fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (b[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
