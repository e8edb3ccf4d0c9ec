//! A warning repeated by a flood of peers, logged at most once a second with a count of the rest.

use std::fmt;
use std::time::{Duration, Instant};

use log::warn;

/// Logs a repeated warning at most once a second, with how many were held back.
#[derive(Default)]
pub struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// Logs `text` as a warning, unless one was logged less than a second ago.
    pub fn warn(&mut self, text: fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.held += 1;
            return;
        }
        match std::mem::take(&mut self.held) {
            0 => warn!("{text}"),
            held => warn!("{text} (and {held} more like it in the last second)"),
        }
        self.last = Some(now);
    }
}
