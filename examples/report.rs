//! Printing an error with its causes: `pool_core::error::Report`.
//!
//! Every error in this workspace says only its own part in `Display` and returns its cause
//! from `source()`, so printing `{e}` alone shows the outermost part of the story. `Report`
//! prints the whole chain on one line, outermost first: what `{:#}` does with `anyhow`.

pub use pool_core::error::Report;
