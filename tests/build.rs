//! The README's code blocks, as doctests of this crate (`ReadmeDoctests` in `src/lib.rs`).
//!
//! The README is copied to `OUT_DIR` with one change: a block tagged with a test server
//! (```` ```rust,postgres ````, `rust,redis`, `rust,mysql`: a program that needs it)
//! becomes a plain `rust` block whose `fn main` starts with a hidden line that checks the
//! server is there and, when it is not, returns at once with the loud `SKIPPED` banner (a
//! failure with `POOL_TEST_REQUIRE_SERVICES=1`), as every other test that needs a server
//! does. On GitHub the README shows the program as it is.
//!
//! A block that names `PgConnection` (diesel on PostgreSQL) needs diesel's PostgreSQL
//! backend, which links libpq: without this crate's `diesel-postgres` feature it becomes
//! `rust,ignore` (rustdoc lists it as ignored), and the build and the test
//! `readme::tests::diesel_postgres_not_built` say so loudly.

use std::path::Path;
use std::{env, fs};

/// The tag, the server's name, where the test server listens (README, "Two commands").
const SERVERS: [(&str, &str, &str); 3] = [
    ("postgres", "PostgreSQL", "127.0.0.1:5432"),
    ("redis", "Redis", "127.0.0.1:6379"),
    ("mysql", "MariaDB", "127.0.0.1:3306"),
];

fn main() {
    // At run time, not with `env!`: cargo reuses a build script built in another checkout
    // of the same sources that shares the target directory (`.ci/fresh-clone`'s clone,
    // deleted since), and `env!` would keep that checkout's path.
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let readme = Path::new(&manifest_dir).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).expect("read README.md");
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("README.md");
    let mut text = text;
    if env::var_os("CARGO_FEATURE_DIESEL_POSTGRES").is_none() {
        for line in ignore_blocks_naming(&mut text, "PgConnection") {
            println!(
                "cargo:warning=README.md line {line} (diesel on PostgreSQL) is not tested: it \
                 needs the `diesel-postgres` feature (libpq)"
            );
        }
    }
    fs::write(out, with_server_checks(&text)).expect("write the README's copy");
}

/// Turns each ```` ```rust ```` block of `text` whose code contains `word` into a
/// ```` ```rust,ignore ```` block; returns the lines (1-based) of their fences.
fn ignore_blocks_naming(text: &mut String, word: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut marked = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim_start().starts_with("```") && line.trim_start() != "```" {
            let end = (i + 1..lines.len())
                .find(|&j| lines[j].trim_start() == "```")
                .unwrap_or(lines.len());
            let is_rust = line
                .trim_start()
                .trim_start_matches('`')
                .starts_with("rust");
            if is_rust && lines[i + 1..end].iter().any(|l| l.contains(word)) {
                out.push_str("```rust,ignore\n");
                marked.push(i + 1);
            } else {
                out.push_str(line);
                out.push('\n');
            }
            for l in &lines[i + 1..end.min(lines.len())] {
                out.push_str(l);
                out.push('\n');
            }
            if end < lines.len() {
                out.push_str(lines[end]);
                out.push('\n');
            }
            i = end + 1;
        } else {
            out.push_str(line);
            out.push('\n');
            i += 1;
        }
    }
    *text = out;
    marked
}

fn with_server_checks(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1024);
    let mut in_block = false;
    // The server the open block needs, until its `fn main` line is seen.
    let mut waiting: Option<(&str, &str, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if let Some(info) = line.trim_start().strip_prefix("```") {
            if in_block {
                if let Some((name, _, start)) = waiting.take() {
                    panic!("README.md line {start}: a block that needs {name} has no `fn main`");
                }
            } else {
                let mut tags = info.split(',');
                let server = (tags.next() == Some("rust"))
                    .then(|| tags.find_map(|t| SERVERS.iter().find(|s| s.0 == t.trim())))
                    .flatten();
                if let Some(&(_, name, addr)) = server {
                    out.push_str("```rust\n");
                    waiting = Some((name, addr, number));
                    in_block = true;
                    continue;
                }
            }
            in_block = !in_block;
        }
        out.push_str(line);
        out.push('\n');
        if let Some((name, addr, start)) = waiting {
            if line.trim_start().starts_with("fn main(") {
                out.push_str(&format!(
                    "# if !integration_tests::readme::server_up(\"{name}\", \"{addr}\", \
                     \"the README's program at line {start}\") {{ return Ok(()); }}\n"
                ));
                waiting = None;
            }
        }
    }
    out
}
