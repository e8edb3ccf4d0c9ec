//! The line ends of a datagram peer's messages, kept in order so that each reply goes back with
//! its own message's line end (as `nc -u` users expect), in two bits each.

/// The line ends of a server's peer's datagrams not answered yet, oldest first, two bits each: every
/// reply goes back with its own message's line end, even when one turn brings several messages.
#[derive(Default)]
pub(super) struct LineEnds {
    codes: u64,
    len: u8,
    /// The latest line end seen.
    last: u8,
}

impl LineEnds {
    const KINDS: [&'static [u8]; 3] = [b"", b"\n", b"\r\n"];
    /// Line ends kept in order, at most: the messages past these get the latest one seen.
    const MAX: u8 = 32;

    /// Notes the line end of a message that will be answered.
    pub(super) fn push(&mut self, end: &[u8]) {
        self.seen(end);
        if self.len < LineEnds::MAX {
            self.codes |= u64::from(self.last) << (2 * self.len);
            self.len += 1;
        }
    }

    /// Notes the latest line end only (a client's: its messages answer nothing).
    pub(super) fn seen(&mut self, end: &[u8]) {
        self.last = LineEnds::KINDS.iter().position(|&kind| kind == end).unwrap_or(0) as u8;
    }

    /// The line end for the next reply: the oldest unanswered message's, or the latest seen.
    pub(super) fn pop(&mut self) -> &'static [u8] {
        if self.len == 0 {
            return self.latest();
        }
        let code = (self.codes & 3) as usize;
        self.codes >>= 2;
        self.len -= 1;
        LineEnds::KINDS[code]
    }

    pub(super) fn latest(&self) -> &'static [u8] {
        LineEnds::KINDS[usize::from(self.last)]
    }

    /// Forgets the line end at `index` (0 is the oldest), that of a message that gets no reply.
    pub(super) fn remove(&mut self, index: usize) {
        if index >= usize::from(self.len) {
            return;
        }
        let below = (1u64 << (2 * index)) - 1;
        self.codes = (self.codes & below) | ((self.codes >> 2) & !below);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::LineEnds;

    #[test]
    fn line_ends_come_back_in_order_and_stay_bounded() {
        let mut ends = LineEnds::default();
        assert_eq!(ends.pop(), b"");
        for end in [&b"\n"[..], b"", b"\r\n"] {
            ends.push(end);
        }
        assert_eq!([ends.pop(), ends.pop(), ends.pop()], [&b"\n"[..], b"", b"\r\n"]);
        // None waiting: the latest seen.
        assert_eq!(ends.pop(), b"\r\n");
        // Past MAX the first MAX still come back in order; the rest get the latest seen.
        let kinds = [&b"\n"[..], b"\r\n", b""];
        for i in 0..40 {
            ends.push(kinds[i % 3]);
        }
        for i in 0..40 {
            let want = if i < usize::from(LineEnds::MAX) { kinds[i % 3] } else { kinds[39 % 3] };
            assert_eq!(ends.pop(), want, "message {i}");
        }
        // One in the middle that gets no reply.
        for end in [&b"\n"[..], b"", b"\r\n"] {
            ends.push(end);
        }
        ends.remove(1);
        assert_eq!([ends.pop(), ends.pop(), ends.pop()], [&b"\n"[..], b"\r\n", b"\r\n"]);
        // A client's: the latest only.
        ends.seen(b"\r\n");
        assert_eq!((ends.latest(), ends.pop()), (&b"\r\n"[..], &b"\r\n"[..]));
    }
}
