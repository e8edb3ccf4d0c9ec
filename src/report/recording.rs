//! What an in-process server saw, kept for `compare` to read while the server runs.

use std::sync::{Arc, Mutex};

/// One thing a server saw, as [`Report::recording`] keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A peer arrived (its name).
    Connected(String),
    /// A message came (its bytes).
    Message(Vec<u8>),
    /// A peer left.
    Disconnected {
        /// Its name.
        peer: String,
        /// Why, in words.
        reason: String,
    },
}

/// What a server running on another thread has seen so far, readable while it runs.
#[derive(Clone, Default)]
pub struct Recording(Arc<Mutex<Vec<Seen>>>);

impl Recording {
    pub(super) fn push(&self, seen: Seen) {
        if let Ok(mut all) = self.0.lock() {
            all.push(seen);
        }
    }

    /// Everything seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.0.lock().map(|all| all.clone()).unwrap_or_default()
    }

    /// How many peers it has seen arrive.
    pub fn connects(&self) -> usize {
        self.seen().iter().filter(|s| matches!(s, Seen::Connected(_))).count()
    }

    /// The messages it has received, in order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Message(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// Why the first peer to leave left, once one has.
    pub fn first_disconnect(&self) -> Option<String> {
        self.seen().into_iter().find_map(|s| match s {
            Seen::Disconnected { reason, .. } => Some(reason),
            _ => None,
        })
    }
}
