//! Closes in flight, and the bound on how long each keeps its place in `max_size`.

use std::collections::VecDeque;
use std::time::Instant;

/// Connections handed to the closer whose close has not finished.
///
/// Each keeps its place in `max_size` until its close finishes or its bound
/// (`close_timeout` after it was retired) passes; past the bound it goes on uncounted
/// (`overrunning`), so a close that hangs on the network cannot eat the pool's capacity.
#[derive(Default)]
pub(crate) struct Closing {
    /// Counted closes with the moment their place is given back, in submission order
    /// (every bound is `close_timeout` after its submission), so the earliest is in front.
    bounds: VecDeque<(u64, Instant)>,
    /// Closes still running past their bound (their place was given back).
    overrunning: usize,
}

impl Closing {
    pub(super) fn start(&mut self, id: u64, bound: Instant) {
        self.bounds.push_back((id, bound));
    }

    /// Closes that still count toward `max_size`.
    #[inline]
    pub(super) fn counted(&self) -> usize {
        self.bounds.len()
    }

    /// Every close not finished, those past their bound included.
    pub(super) fn running(&self) -> usize {
        self.bounds.len() + self.overrunning
    }

    /// The earliest bound still to pass.
    pub(super) fn next_bound(&self) -> Option<Instant> {
        self.bounds.front().map(|&(_, bound)| bound)
    }

    /// Gives back the places of closes past their bound (they go on, uncounted). Returns
    /// how many.
    pub(super) fn expire(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(_, bound)) = self.bounds.front() {
            if bound > now {
                break;
            }
            self.bounds.pop_front();
            self.overrunning += 1;
            n += 1;
        }
        n
    }

    /// The close of `id` finished: its place is given back (if its bound has not already).
    pub(super) fn finish(&mut self, id: u64) {
        if let Some(pos) = self.bounds.iter().position(|&(i, _)| i == id) {
            self.bounds.remove(pos);
        } else {
            self.overrunning = self.overrunning.saturating_sub(1);
        }
    }
}
