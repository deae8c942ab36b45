//! # A pool of objects that are not connections: warm text analysers
//!
//! `cargo run --example objects`: no setup, a second or two. A `ConnectionFactory` can
//! make anything costly to build, cheap to reuse and used by one thread at a time; here an
//! [`Analyzer`], a 48 000-entry lemma table (in real life: a dictionary loaded from disk, a
//! compiled regex set, a model) plus per-use state. The pool gives it a ceiling, building
//! ahead of need, `reset`, `is_broken`, `validate` and statistics, as it does connections.
//!
//! Pool objects when they are costly (milliseconds, megabytes) and threads you do not
//! control (a server's, a job queue's) need one now and then: you get a ceiling, a bounded
//! wait when all are busy, and numbers. Otherwise, a better tool:
//! - **`thread_local!`**: a fixed set of long-lived threads that use it all the time (one
//!   per thread, no locking; but one per thread, however many threads);
//! - **rayon / threadpool**: when the work itself is what you spread over the cores (the
//!   warm object per worker: rayon's `map_init`, or a `thread_local!`);
//! - **a channel** (`std::sync::mpsc`, crossbeam) to one owner thread: the object is not
//!   `Send`, or requests should queue behind one worker.

use std::collections::HashMap;
use std::time::Duration;

use pool_core::{ConnectionFactory, ConnectionPool, PoolConfig, PoolError};

/// The vocabulary: 20^3 stems of three syllables, each in six forms.
const SYLLABLES: [&str; 20] = [
    "ka", "lo", "mi", "ren", "so", "ta", "vu", "pe", "dri", "no", "sha", "qui", "ba", "fe", "gu",
    "ho", "ji", "ly", "ma", "ne",
];
const SUFFIXES: [&str; 6] = ["", "s", "ed", "ing", "er", "ers"];

/// The pooled object: a costly table built once, per-use state cleared on every release.
pub struct Analyzer {
    /// Word form -> its stem ("kalomiing" -> "kalomi"). Costly to build, never changes.
    lemmas: HashMap<String, String>,
    /// Per use: the lower-cased input. Cleared on release; its capacity is kept.
    scratch: String,
    /// Per use: stem -> count.
    counts: HashMap<String, u32>,
}

impl Analyzer {
    /// The costly part: builds the lemma table (48 000 entries).
    fn build() -> Analyzer {
        let mut lemmas = HashMap::new();
        for (a, b, c) in (0..8000).map(|i| (i / 400, i / 20 % 20, i % 20)) {
            let stem = [SYLLABLES[a], SYLLABLES[b], SYLLABLES[c]].concat();
            for suffix in SUFFIXES {
                lemmas.insert(format!("{stem}{suffix}"), stem.clone());
            }
        }
        Analyzer {
            lemmas,
            scratch: String::with_capacity(4096),
            counts: HashMap::new(),
        }
    }

    /// One use: the most frequent stem in `text`, and how often it occurs.
    fn top_stem(&mut self, text: &str) -> Option<(String, u32)> {
        self.scratch.push_str(&text.to_lowercase());
        for word in self.scratch.split(|c: char| !c.is_alphanumeric()) {
            if let Some(stem) = self.lemmas.get(word) {
                *self.counts.entry(stem.clone()).or_default() += 1;
            }
        }
        let top = self.counts.iter().max_by_key(|(stem, n)| (**n, *stem));
        top.map(|(stem, n)| (stem.clone(), *n))
    }
}

/// Tells the pool how to build, check and recycle analysers.
struct AnalyzerFactory;

impl ConnectionFactory for AnalyzerFactory {
    type Connection = Analyzer;
    type Error = std::io::Error;

    /// Runs on the pool's background creator threads, never on a caller's.
    fn create(&self, _timeout: Duration) -> Result<Analyzer, std::io::Error> {
        Ok(Analyzer::build())
    }

    /// The health check before reuse: a self-test that the table still answers right.
    fn validate(&self, a: &mut Analyzer, _timeout: Duration) -> Result<(), std::io::Error> {
        let ok = a
            .lemmas
            .get("kalomiing")
            .is_some_and(|stem| stem == "kalomi");
        ok.then_some(())
            .ok_or_else(|| std::io::Error::other("lemma table corrupted"))
    }

    /// On every release: forget the last caller's input and counts, keep the capacity.
    fn reset(&self, a: &mut Analyzer) -> Result<(), std::io::Error> {
        a.scratch.clear();
        a.counts.clear();
        Ok(())
    }

    /// On every release: an analyser bloated by a huge input is dropped (the pool builds
    /// a fresh one when one is needed) instead of pinning that memory for good.
    fn is_broken(&self, a: &mut Analyzer) -> bool {
        a.scratch.capacity() > 64 * 1024
    }
}

/// A document of `words` words from a corner of the vocabulary (so stems repeat).
fn document(seed: u64, words: u64) -> String {
    let word = |k: u64| {
        let h = (((seed << 20) ^ k).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize;
        let syl = &SYLLABLES;
        let (a, b, c) = (syl[h % 2], syl[h / 2 % 2], syl[h / 4 % 20]);
        format!("{a}{b}{c}{} ", SUFFIXES[h / 80 % 6])
    };
    (0..words).map(word).collect()
}

/// Eight threads analyse 40 documents each, sharing at most three analysers.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = PoolConfig::builder()
        .min_size(2) // two built ahead of need
        .max_size(3) // never more than three in memory
        .validation_skip_window(Duration::ZERO) // self-test on every reuse: it is cheap
        .build()?;
    let pool = ConnectionPool::new(AnalyzerFactory, config)?;

    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || -> Result<(), PoolError> {
                for i in 0..40u64 {
                    // One document in 20 is huge: its analyser will not be kept.
                    let words = if (t + i) % 20 == 19 { 10_000 } else { 300 };
                    let text = document(t * 1000 + i, words);
                    let mut analyzer = pool.acquire()?; // waits while all three are busy
                    let top = analyzer.top_stem(&text);
                    if i == 0 {
                        println!("thread {t}: the first document's top stem is {top:?}");
                    }
                } // back to the pool here: is_broken, then reset
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker panicked")?;
    }

    pool.shutdown_timeout(Duration::from_secs(5));
    let s = pool.statistics();
    println!(
        "\n320 documents: {} analysers built, {} dropped after a huge input",
        s.total_created, s.closed.broken
    );
    println!("{s}");
    Ok(())
}
