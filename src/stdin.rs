//! Lines from stdin (a terminal, a pipe or a regular file, which epoll cannot watch) read on a thread
//! of their own and handed to the event loop through a bounded channel and a `mio::Waker`.

use std::io::{self, BufRead};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread;

use mio::Waker;

/// One thing read from the input.
#[derive(Debug)]
pub enum Input {
    /// A line, without its `\n` or `\r\n`.
    Line(Vec<u8>),
    /// A line longer than the bound, skipped whole; `len` bytes were seen.
    TooLong {
        /// Its length.
        len: usize,
    },
    /// End of input.
    End,
    /// Reading failed; nothing more follows.
    Failed(io::Error),
}

/// Lines read ahead and waiting in the channel, at most: keeps memory bounded when stdin is a big file.
const READ_AHEAD: usize = 64;

/// Reads lines of up to `max` bytes from `reader` on a new thread; wakes `waker` after each one.
pub fn spawn(reader: impl BufRead + Send + 'static, max: usize, waker: Arc<Waker>) -> Receiver<Input> {
    let (tx, rx) = sync_channel(READ_AHEAD);
    let mut reader = reader;
    thread::spawn(move || {
        loop {
            let input = match read_line(&mut reader, max) {
                Ok(Some(Ok(line))) => Input::Line(line),
                Ok(Some(Err(len))) => Input::TooLong { len },
                Ok(None) => Input::End,
                Err(e) => Input::Failed(e),
            };
            let last = matches!(input, Input::End | Input::Failed(_));
            // The loop has hung up when the send fails: nothing left to do.
            if tx.send(input).is_err() || waker.wake().is_err() || last {
                return;
            }
        }
    });
    rx
}

/// Reads one line of at most `max` bytes (line end excluded), never holding more than that in memory.
/// `Ok(None)` at end of input; `Ok(Some(Err(len)))` for a line over the bound, which is consumed whole.
pub fn read_line(reader: &mut impl BufRead, max: usize) -> io::Result<Option<Result<Vec<u8>, usize>>> {
    let mut line = Vec::new();
    let mut seen = 0usize;
    let mut last = None;
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            if seen == 0 {
                return Ok(None);
            }
            break;
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        seen += chunk.len();
        last = chunk.last().copied().or(last);
        // One byte of slack: a '\r' just before the '\n' is not part of the line.
        if seen <= max.saturating_add(1) {
            line.extend_from_slice(chunk);
        }
        let used = chunk.len() + usize::from(done);
        reader.consume(used);
        if done {
            break;
        }
    }
    // Judged by the line's real last byte: an over-long line is only partly held.
    if last == Some(b'\r') {
        seen -= 1;
        line.truncate(seen);
    }
    if seen > max {
        return Ok(Some(Err(seen)));
    }
    Ok(Some(Ok(line)))
}

#[cfg(test)]
mod tests {
    use super::read_line;

    fn all(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, usize>> {
        let mut reader = input;
        std::iter::from_fn(|| read_line(&mut reader, max).unwrap()).collect()
    }

    #[test]
    fn lines_and_bounds() {
        assert_eq!(
            all(b"a\r\nbb\n\nlast", 10),
            vec![Ok(b"a".to_vec()), Ok(b"bb".to_vec()), Ok(vec![]), Ok(b"last".to_vec())]
        );
        assert_eq!(all(b"12345\n123456\nok\n", 5), vec![Ok(b"12345".to_vec()), Err(6), Ok(b"ok".to_vec())]);
        assert_eq!(all(b"12345\r\n", 5), vec![Ok(b"12345".to_vec())]);
        assert!(all(b"", 5).is_empty());
    }
}
