//! Printing an error with its causes.
//!
//! Every error in this workspace says only its own part in `Display` and returns its cause
//! from `source()`, so printing `{e}` alone shows the outermost part of the story. `Report`
//! prints the whole chain on one line, outermost first: what `{:#}` does with `anyhow`.

use std::error::Error;
use std::fmt;

/// Displays an error and its `source()` chain, joined with ": ".
pub struct Report<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut next = self.0.source();
        while let Some(cause) = next {
            let text = cause.to_string();
            // Some driver errors display their inner error and also return it as source().
            if !text.is_empty() && text != last {
                write!(f, ": {text}")?;
            }
            last = text;
            next = cause.source();
        }
        Ok(())
    }
}
