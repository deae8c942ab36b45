//! The README's code blocks, as doctests of this crate (`ReadmeDoctests` in `src/lib.rs`).
//!
//! The README is copied to `OUT_DIR` with one change: a block tagged with a test server
//! (```` ```rust,postgres ````, `rust,redis`, `rust,mysql`: a program that needs it)
//! becomes a plain `rust` block whose `fn main` starts with a hidden line that checks the
//! server is there and, when it is not, returns at once with the loud `SKIPPED` banner (a
//! failure with `POOL_TEST_REQUIRE_SERVICES=1`), as every other test that needs a server
//! does. On GitHub the README shows the program as it is.

use std::path::Path;
use std::{env, fs};

/// The tag, the server's name, where the test server listens (README, "Two commands").
const SERVERS: [(&str, &str, &str); 3] = [
    ("postgres", "PostgreSQL", "127.0.0.1:5432"),
    ("redis", "Redis", "127.0.0.1:6379"),
    ("mysql", "MariaDB", "127.0.0.1:3306"),
];

fn main() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).expect("read README.md");
    let out = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("README.md");
    fs::write(out, with_server_checks(&text)).expect("write the README's copy");
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
