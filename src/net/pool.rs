//! Message buffers given back once handled: a busy peer's messages then cost no allocation each.

/// Spare message buffers.
#[derive(Default)]
pub(super) struct Pool {
    spare: Vec<Vec<u8>>,
}

impl Pool {
    /// Buffers kept, at most: as many messages as a busy turn brings.
    const MAX: usize = 1024;
    /// The largest buffer kept, so that the pool holds at most 1 MiB (a big message's allocation is
    /// small beside copying it anyway).
    const KEEP: usize = 1024;

    /// `bytes` in a buffer of their own.
    pub(super) fn message(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut message = self.spare.pop().unwrap_or_default();
        message.extend_from_slice(bytes);
        message
    }

    /// Takes a handled message's buffer back.
    pub(super) fn give(&mut self, mut message: Vec<u8>) {
        if self.spare.len() < Pool::MAX && message.capacity() <= Pool::KEEP {
            message.clear();
            self.spare.push(message);
        }
    }
}
