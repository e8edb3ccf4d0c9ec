//! Message framing on stream sockets: bytes in, whole messages out, with a size bound. No I/O.

/// How a stream of bytes is cut into messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// One line is one message; `\n` or `\r\n` ends it and is not part of it.
    Line,
    /// One read is one message, as in the tutorial: TCP may merge or split them.
    Raw,
}

/// A line longer than the bound arrived: `seen` bytes without a line end.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLong {
    /// Bytes seen of the line so far.
    pub seen: usize,
}

/// Cuts a byte stream into lines, holding at most `max` bytes of an unfinished one.
#[derive(Debug)]
pub struct LineFramer {
    partial: Vec<u8>,
    max: usize,
}

/// Buffers bigger than this are given back to the allocator once emptied, so idle peers stay small.
const KEEP_CAPACITY: usize = 16 * 1024;

impl LineFramer {
    /// A framer that accepts lines of up to `max` bytes (line end excluded).
    pub fn new(max: usize) -> Self {
        LineFramer { partial: Vec::new(), max }
    }

    /// Feeds `data`, calling `emit` with each completed line (line end stripped).
    /// Fails, and keeps nothing, once an unfinished line passes the bound.
    pub fn push(&mut self, mut data: &[u8], mut emit: impl FnMut(&[u8])) -> Result<(), TooLong> {
        while let Some(end) = memchr::memchr(b'\n', data) {
            let (head, rest) = (&data[..end], &data[end + 1..]);
            data = rest;
            // Checked before copying, so an over-long line is never held, not even for a moment.
            self.check(head)?;
            if self.partial.is_empty() {
                emit(strip_cr(head));
            } else {
                self.partial.extend_from_slice(head);
                emit(strip_cr(&self.partial));
                self.partial.clear();
            }
        }
        self.check(data)?;
        self.partial.extend_from_slice(data);
        if self.partial.is_empty() && self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        }
        Ok(())
    }

    /// Bytes of an unfinished line held now.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Takes what is left of an unfinished line when the stream ends (it is still a message).
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.partial.is_empty() {
            return None;
        }
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }

    /// Fails, dropping what is held, if the held bytes followed by `more` make a line over the bound.
    /// A final '\r' is not counted: it may be the first half of "\r\n" (and `finish` drops it too),
    /// so at most `max + 1` bytes are ever held.
    fn check(&mut self, more: &[u8]) -> Result<(), TooLong> {
        let ends_cr = more.last().or(self.partial.last()) == Some(&b'\r');
        let seen = self.partial.len() + more.len() - usize::from(ends_cr);
        if seen > self.max {
            self.partial = Vec::new();
            return Err(TooLong { seen });
        }
        Ok(())
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Strips one trailing `\n` or `\r\n` from a datagram (as `nc -u` sends), returning the line end removed.
pub fn strip_line_end(datagram: &[u8]) -> (&[u8], &'static [u8]) {
    if let Some(body) = datagram.strip_suffix(b"\r\n") {
        (body, b"\r\n")
    } else if let Some(body) = datagram.strip_suffix(b"\n") {
        (body, b"\n")
    } else {
        (datagram, b"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(framer: &mut LineFramer, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, TooLong> {
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk, |l| out.push(l.to_vec()))?;
        }
        Ok(out)
    }

    #[test]
    fn splits_and_joins_across_reads() {
        let mut f = LineFramer::new(100);
        let got = lines(&mut f, &[b"he", b"llo\nwor", b"ld\r", b"\n\n", b"tail"]).unwrap();
        assert_eq!(got, vec![b"hello".to_vec(), b"world".to_vec(), b"".to_vec()]);
        assert_eq!(f.finish(), Some(b"tail".to_vec()));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn bound_is_inclusive_and_enforced() {
        let mut f = LineFramer::new(5);
        assert_eq!(lines(&mut f, &[b"12345\n"]).unwrap(), vec![b"12345".to_vec()]);
        assert_eq!(lines(&mut f, &[b"12345\r\n"]).unwrap(), vec![b"12345".to_vec()]);
        assert_eq!(lines(&mut f, &[b"123456\n"]), Err(TooLong { seen: 6 }));
        let mut f = LineFramer::new(5);
        assert_eq!(lines(&mut f, &[b"123", b"4567"]), Err(TooLong { seen: 7 }));
        assert_eq!(f.pending(), 0);
    }

    #[test]
    fn datagram_line_end() {
        assert_eq!(strip_line_end(b"hi\r\n"), (&b"hi"[..], &b"\r\n"[..]));
        assert_eq!(strip_line_end(b"hi\n"), (&b"hi"[..], &b"\n"[..]));
        assert_eq!(strip_line_end(b"hi"), (&b"hi"[..], &b""[..]));
        assert_eq!(strip_line_end(b""), (&b""[..], &b""[..]));
    }
}
