//! Every line the user sees: the text transcript (the tutorial's words) or one JSON object per event
//! on stdout, and the client's timeouts and summary on stderr. Each line is flushed as it is written.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{Common, Expect, Quiet};
use crate::error::{Error, Result};
use crate::json::Json;
use crate::net::Closed;
use crate::proto::Proto;
use crate::text::{count, escaped, grouped, human, millis, push_escaped};
use crate::upper::Uppercased;

mod recording;
mod summary;

pub use self::recording::{Recording, Seen};
pub use self::summary::Summary;

/// Where a session's events go, and in which form.
pub struct Report {
    json: bool,
    /// Writes nothing at all (an in-process server under `bench`): not even the formatting is done.
    silent: bool,
    /// Lines name the socket kind of their peer (a server of several kinds).
    name_kinds: bool,
    /// Keeps the server's events, typed, for the thread that started it (`compare`), instead of showing them.
    recording: Option<Recording>,
    proto: Proto,
    prompt: bool,
    /// The prompt as it is shown now: ` ? `, or naming the peer the next typed line answers.
    prompt_text: String,
    /// A prompt has been shown and no line typed since: lines written meanwhile show it again.
    prompt_out: bool,
    /// stdout is a terminal: a line written under a prompt first clears it (`\r`, erase line).
    redraw: bool,
    /// What of the notes and summary goes to stderr.
    quiet: Quiet,
    /// Writes to the process's stdout, whose first JSON event (from any report) carries `version`.
    on_stdout: bool,
    /// This report's first event is still to come.
    first_event: bool,
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    /// Transcript lines of the current turn of the event loop, written by [`Report::flush`] in one go
    /// before the loop waits again: a busy server makes one write per turn, not one per message.
    pending: Vec<u8>,
}

/// Whether a JSON event has been written to this process's stdout: the first carries `version`,
/// whichever report writes it (a fatal error after a failed start comes from a report of its own).
static STDOUT_STARTED: AtomicBool = AtomicBool::new(false);

/// The tutorial's prompt.
const PROMPT: &str = " ? ";
/// Back to the start of the line, and erase it: a terminal's prompt line made ready for another line.
const CLEAR_LINE: &[u8] = b"\r\x1b[K";

/// Transcript held before it is written even within a turn.
const PENDING_MAX: usize = 64 * 1024;

impl Report {
    /// A report on the process's stdout and stderr.
    pub fn new(proto: Proto, json: bool, prompt: bool) -> Self {
        let mut report = Report::to(proto, json, prompt, Box::new(io::stdout()), Box::new(io::stderr()));
        report.on_stdout = true;
        report.redraw = report.prompt && io::stdout().is_terminal();
        report
    }

    /// A report into any pair of writers (in-process runs capture them).
    pub fn to(proto: Proto, json: bool, prompt: bool, out: Box<dyn Write + Send>, err: Box<dyn Write + Send>) -> Self {
        Report {
            json,
            silent: false,
            name_kinds: false,
            recording: None,
            proto,
            prompt: prompt && !json,
            prompt_text: PROMPT.to_string(),
            prompt_out: false,
            redraw: false,
            quiet: Quiet::No,
            on_stdout: false,
            first_event: true,
            out,
            err,
            pending: Vec::new(),
        }
    }

    /// A report that shows nothing and costs nothing, for a server whose transcript nobody reads.
    pub fn discard(proto: Proto) -> Self {
        let mut report = Report::to(proto, false, false, Box::new(io::sink()), Box::new(io::sink()));
        report.silent = true;
        report
    }

    /// What of the notes and closing summary reaches stderr (`-q`, `-qq`); JSON events are not affected.
    pub fn set_quiet(&mut self, quiet: Quiet) {
        self.quiet = quiet;
    }

    /// Says whether lines name their peer's socket kind: for a server of several kinds at once.
    pub fn name_kinds(&mut self, on: bool) {
        self.name_kinds = on;
    }

    /// The socket kind of the events that follow (a server of several kinds sets it per event).
    pub fn set_kind(&mut self, proto: Proto) {
        self.proto = proto;
    }

    /// A peer's name as text lines show it: escaped, and after its kind when several are served.
    fn shown_peer(&self, peer: &str) -> String {
        if self.name_kinds { format!("{} {}", self.proto, escaped(peer.as_bytes())) } else { escaped(peer.as_bytes()) }
    }

    /// A report that shows nothing and keeps what a server saw in the returned [`Recording`].
    pub fn recording(proto: Proto) -> (Self, Recording) {
        let recording = Recording::default();
        let mut report = Report::discard(proto);
        report.recording = Some(recording.clone());
        (report, recording)
    }

    /// `Listening on tcp 127.0.0.1:5001`: the real bound address, first line of a server's output.
    pub fn listening(&mut self, address: &str) -> Result<()> {
        if self.json {
            return self.event("listening", |j| j.str("address", address));
        }
        let proto = self.proto;
        self.line(format_args!("Listening on {proto} {address}"))
    }

    /// A new peer: `Connection from: ADDR`; in JSON, with TCP_NODELAY as the kernel has it (TCP).
    /// `nodelay` asks the kernel (a system call per connection), so it is called only for JSON.
    pub fn connected(&mut self, peer: &str, nodelay: impl FnOnce() -> Option<bool>) -> Result<()> {
        if let Some(recording) = &self.recording {
            recording.push(Seen::Connected(peer.to_string()));
        }
        if self.json {
            return self.event("connect", |j| match nodelay() {
                Some(on) => j.str("peer", peer).bool("nodelay", on),
                None => j.str("peer", peer),
            });
        }
        let peer = self.shown_peer(peer);
        self.line(format_args!("Connection from: {peer}"))
    }

    /// A message and its uppercase form, tagged with the peer when several are connected.
    pub fn message(&mut self, peer: &str, tagged: bool, text: &Uppercased<'_>) -> Result<()> {
        let (message, upper) = (text.message, text.upper);
        if let Some(recording) = &self.recording {
            recording.push(Seen::Message(message.to_vec()));
        }
        if self.silent {
            return Ok(());
        }
        if self.json {
            return self.event("message", |j| j.str("peer", peer).bytes("message", message).bytes("upper", upper));
        }
        // Straight into the turn's buffer: on a busy server this is the hot path, so no formatting,
        // and the peer's tag is escaped once and copied to the second line.
        self.under_prompt();
        let start = self.pending.len();
        if tagged || self.name_kinds {
            self.pending.push(b'[');
            if self.name_kinds {
                self.pending.extend_from_slice(self.proto.name().as_bytes());
                self.pending.push(b' ');
            }
            push_escaped(&mut self.pending, peer.as_bytes());
            self.pending.extend_from_slice(b"] ");
        }
        let tag = start..self.pending.len();
        let lines: [(&[u8], &[u8]); 2] = [(b"from connected user: ", message), (b"Received from User: ", upper)];
        // Room for both lines at once; when nothing needs escaping, that is all they take.
        self.pending
            .reserve(2 * tag.len() + lines.iter().map(|(said, bytes)| said.len() + bytes.len() + 1).sum::<usize>());
        for (i, (said, bytes)) in lines.into_iter().enumerate() {
            if i > 0 {
                self.pending.extend_from_within(tag.clone());
            }
            self.pending.extend_from_slice(said);
            if text.plain() {
                self.pending.extend_from_slice(bytes);
            } else {
                push_escaped(&mut self.pending, bytes);
            }
            self.pending.push(b'\n');
        }
        self.prompt_again();
        self.write(&[])
    }

    /// The server's reply, in JSON only (the text transcript shows replies on the client's side).
    pub fn replied(&mut self, peer: &str, reply: &[u8]) -> Result<()> {
        if self.json {
            return self.event("reply", |j| j.str("peer", peer).bytes("reply", reply));
        }
        Ok(())
    }

    /// A peer went away: `Disconnected: ADDR`, with the reason unless it simply closed.
    pub fn disconnected(&mut self, peer: &str, reason: &Closed) -> Result<()> {
        if let Some(recording) = &self.recording {
            recording.push(Seen::Disconnected { peer: peer.to_string(), reason: reason.to_string() });
        }
        if self.json {
            return self.event("disconnect", |j| match reason.cause() {
                Some(cause) => j.str("peer", peer).str("reason", &reason.to_string()).str("cause", cause),
                None => j.str("peer", peer).str("reason", &reason.to_string()),
            });
        }
        let peer = self.shown_peer(peer);
        match reason {
            Closed::ByPeer => self.line(format_args!("Disconnected: {peer}")),
            other => self.line(format_args!("Disconnected: {peer} ({other})")),
        }
    }

    /// `peer` left while `messages` of its messages waited for a reply typed on stdin: they are
    /// dropped, and the next typed line goes to the next peer waiting.
    pub fn unanswered(&mut self, peer: &str, messages: u64) -> Result<()> {
        if self.json {
            return self.event("unanswered", |j| j.str("peer", peer).int("messages", messages));
        }
        let peer = self.shown_peer(peer);
        self.line(format_args!("No reply will go to {peer}: it left with {} unanswered", count(messages, "message")))
    }

    /// A peer closed its sending side (end of file) while `owed` replies are still to go to it:
    /// `End of input from: ADDR (EOF); 1 message still owed a reply`.
    pub fn input_ended(&mut self, peer: &str, owed: usize) -> Result<()> {
        if self.json {
            return self.event("eof", |j| j.str("peer", peer).int("owed", owed as u64));
        }
        let peer = self.shown_peer(peer);
        let owed = count(owed as u64, "message");
        self.line(format_args!("End of input from: {peer} (EOF); {owed} still owed a reply"))
    }

    /// The tutorial's ` ? ` prompt, when prompting is on.
    pub fn prompt(&mut self) -> Result<()> {
        if self.prompt {
            self.pending.extend_from_slice(self.prompt_text.as_bytes());
            self.prompt_out = true;
            self.write(&[])?;
        }
        Ok(())
    }

    /// A line has been typed: the prompt shown is answered, and later lines need not show it again.
    pub fn answered(&mut self) {
        self.prompt_out = false;
    }

    /// What the prompt says from now on: ` ? `, or `[PEER] ? ` when the next line typed answers
    /// `peer` (of kind `proto`) and others wait too. With `waiting` false nobody waits for a typed
    /// line any more: a prompt still shown is done with (and erased, on a terminal).
    pub fn set_prompt(&mut self, waiting: bool, peer: Option<(Proto, &str)>) {
        self.prompt_text = match peer {
            Some((proto, name)) if self.name_kinds => format!("[{proto} {}]{PROMPT}", escaped(name.as_bytes())),
            Some((_, name)) => format!("[{}]{PROMPT}", escaped(name.as_bytes())),
            None => PROMPT.to_string(),
        };
        if !waiting && std::mem::replace(&mut self.prompt_out, false) && self.redraw {
            self.pending.extend_from_slice(CLEAR_LINE);
        }
    }

    /// Before a transcript line: on a terminal, a prompt shown is cleared so the line takes its place.
    fn under_prompt(&mut self) {
        if self.prompt_out && self.redraw {
            self.pending.extend_from_slice(CLEAR_LINE);
        }
    }

    /// After a transcript line: a prompt shown before it is shown again, as the last thing written.
    fn prompt_again(&mut self) {
        if self.prompt_out {
            self.pending.extend_from_slice(self.prompt_text.as_bytes());
        }
    }

    /// A reply that came in time: `Received from server: REPLY`.
    pub fn reply(&mut self, seq: u64, reply: &[u8], rtt: Duration) -> Result<()> {
        if self.json {
            return self.event("reply", |j| j.int("seq", seq).bytes("reply", reply).num("rtt_ms", millis(rtt)));
        }
        self.pending.extend_from_slice(b"Received from server: ");
        push_escaped(&mut self.pending, reply);
        self.pending.push(b'\n');
        self.write(&[])
    }

    /// No reply to message `seq` within the timeout.
    pub fn timeout(&mut self, seq: u64, waited: Duration) -> Result<()> {
        if self.json {
            return self.event("timeout", |j| j.int("seq", seq).num("waited_ms", millis(waited)));
        }
        self.note(format_args!("no reply to message {} within {}", grouped(seq), human(waited)))
    }

    /// A reply to message `seq` that came after its timeout.
    pub fn late(&mut self, seq: u64, reply: &[u8], after: Duration) -> Result<()> {
        if self.json {
            return self.event("late", |j| j.int("seq", seq).bytes("reply", reply).num("rtt_ms", millis(after)));
        }
        self.note(format_args!("late reply to message {}, after {}: {}", grouped(seq), human(after), escaped(reply)))
    }

    /// A reply that came when no message was waiting for one.
    pub fn unexpected(&mut self, reply: &[u8]) -> Result<()> {
        if self.json {
            return self.event("unexpected", |j| j.bytes("reply", reply));
        }
        self.note(format_args!("unexpected reply (no message was waiting for one): {}", escaped(reply)))
    }

    /// A second (or later) reply to message `seq`, already answered: the network duplicated a datagram.
    pub fn duplicate(&mut self, seq: u64, reply: &[u8]) -> Result<()> {
        if self.json {
            return self.event("duplicate", |j| j.int("seq", seq).bytes("reply", reply));
        }
        self.note(format_args!("duplicate reply to message {}: {}", grouped(seq), escaped(reply)))
    }

    /// Reply `seq` (already shown) is not what `--expect` said it should be.
    pub fn wrong(&mut self, seq: u64, expect: Expect) -> Result<()> {
        let what = match expect {
            Expect::Upper => "its message uppercased",
            Expect::Echo => "its message unchanged",
        };
        if self.json {
            return self.event("wrong", |j| j.int("seq", seq).str("expected", expect.name()));
        }
        self.note(format_args!("reply to message {} is not {what} (--expect {})", grouped(seq), expect.name()))
    }

    /// A hint for a user who may be stuck: a warning, unless `-q`; a `warning` event under `--json`.
    pub fn warning(&mut self, text: &str) -> Result<()> {
        if self.json {
            return self.event("warning", |j| j.str("warning", text));
        }
        if self.quiet >= Quiet::Summaries {
            return Ok(());
        }
        self.note(format_args!("warning: {text}"))
    }

    /// A line that was not sent, and why: a warning, after which the conversation goes on.
    pub fn not_sent(&mut self, line: u64, why: &str) -> Result<()> {
        if self.json {
            return self.event("warning", |j| j.int("line", line).str("warning", why));
        }
        self.note(format_args!("line {} not sent: {why}", grouped(line)))
    }

    /// A fatal error, as a JSON event (the text form goes to stderr from `main`).
    pub fn error(&mut self, err: &Error) -> Result<()> {
        if self.json {
            return self.event("error", |j| j.str("error", &err.to_string()));
        }
        Ok(())
    }

    fn line(&mut self, text: std::fmt::Arguments<'_>) -> Result<()> {
        self.under_prompt();
        // Writing into a Vec cannot fail.
        let _ = writeln!(self.pending, "{text}");
        // On a pipe the prompt comes again only under a message, the line it asks to answer.
        if self.redraw {
            self.prompt_again();
        }
        self.write(&[])
    }

    /// A closing summary on stderr, unless `-q`.
    fn summary_note(&mut self, text: std::fmt::Arguments<'_>) -> Result<()> {
        if self.quiet >= Quiet::Summaries {
            return Ok(());
        }
        self.note(text)
    }

    /// A note on stderr about one message or line, unless `-qq`.
    fn note(&mut self, text: std::fmt::Arguments<'_>) -> Result<()> {
        if self.quiet >= Quiet::AllButFatal {
            return Ok(());
        }
        // A prompt on a terminal makes way for the line, and comes back after it.
        let redraw = self.prompt_out && self.redraw;
        if redraw {
            self.pending.extend_from_slice(CLEAR_LINE);
        }
        // What stdout holds goes first, so that a terminal shows the two streams in order.
        self.flush()?;
        // One write: a line on a shared stderr never comes out in pieces.
        let line = format!("netpair: {text}\n");
        let result = self.err.write_all(line.as_bytes()).and_then(|()| self.err.flush());
        result.map_err(|e| Error::io("writing to stderr", e))?;
        if redraw {
            self.pending.extend_from_slice(self.prompt_text.as_bytes());
            self.flush()?;
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PENDING_MAX {
            return self.flush();
        }
        Ok(())
    }

    /// Writes the transcript held so far. Event loops call it before each wait, so a script reading
    /// stdout through a pipe sees every line as soon as the turn that made it ends.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.out.write_all(&self.pending).and_then(|()| self.out.flush());
        self.pending.clear();
        result.map_err(|e| Error::io("writing to stdout", e))
    }

    fn event(&mut self, name: &str, fields: impl FnOnce(&mut Json) -> &mut Json) -> Result<()> {
        let mut json = Json::default();
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        json.num("ts", ts).str("event", name).str("proto", self.proto.name());
        // The first event of the run says which netpair wrote it (once per stdout, for the binary).
        let first = std::mem::replace(&mut self.first_event, false)
            && (!self.on_stdout || !STDOUT_STARTED.swap(true, Ordering::SeqCst));
        if first {
            json.str("version", env!("CARGO_PKG_VERSION"));
        }
        fields(&mut json);
        let line = json.finish() + "\n";
        self.write(line.as_bytes())
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        // Whatever ended the run, the lines already made are shown.
        let _ = self.flush();
    }
}

/// Writes a command's whole output (a table, a JSON document, a generated text) to stdout, flushed.
pub fn print(text: &[u8]) -> Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text).and_then(|()| out.flush()).map_err(|e| Error::io("writing to stdout", e))
}

/// The report of a command run from the command line: on stdout and stderr, as quiet as asked.
pub fn report_for(common: &Common) -> Report {
    let mut report = Report::new(common.proto, common.json, common.prompt);
    report.set_quiet(common.quiet);
    report
}

/// With `--json`, a fatal error is also an event on stdout.
pub fn with_json_error<T>(common: &Common, result: Result<T>) -> Result<T> {
    if let Err(err) = &result
        && common.json
        && !err.is_broken_pipe()
    {
        let _ = report_for(common).error(err);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_and_percentiles_share_one_rank_rule() {
        let ms = Duration::from_millis;
        let s = Summary { rtts: vec![ms(4), ms(1), ms(3), ms(2)], ..Summary::default() };
        assert_eq!(s.rtt_spread(), Some((ms(1), ms(3), ms(4))));
        assert_eq!(s.percentile(0.99), Some(ms(4)));
        assert_eq!(Summary::default().percentile(0.5), None);
    }
}
