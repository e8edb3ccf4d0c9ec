//! What the fuzz targets share with `tests/props.rs` (which includes this file): an allocator that
//! records the largest allocation a call makes, and a model of how a byte stream should split into
//! bounded lines, with the check of a framer against it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use netpair::framing::TooLong;

/// Passes every request to the system allocator, noting the largest one made while `watched` runs.
pub struct Watching;

thread_local! {
    static WATCHED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // try_with: allocations during thread teardown find the thread-locals gone.
    let _ = WATCHED.try_with(|watched| {
        if watched.get() {
            LARGEST.with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f`, returning what it returned and the largest single allocation it asked for.
pub fn watched<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    WATCHED.with(|w| w.set(true));
    let result = f();
    WATCHED.with(|w| w.set(false));
    (result, LARGEST.with(Cell::get))
}

/// Runs `f` with its allocations not counted (the target's own bookkeeping inside a watched call).
pub fn unwatched<T>(f: impl FnOnce() -> T) -> T {
    let was = WATCHED.with(|w| w.replace(false));
    let result = f();
    WATCHED.with(|w| w.set(was));
    result
}

/// The most a framer of bound `max` may ask for at once: its unfinished line holds up to `max + 1`
/// bytes and a `Vec` doubles as it grows, from at least 8 bytes.
pub fn allocation_bound(max: usize) -> usize {
    max.saturating_add(1).saturating_mul(2).max(8)
}

/// What a bounded line reader should give for `input`: each line with its line end (`\n`, or `\r\n`)
/// removed, `Err(length)` for one over `max` bytes; a last line without `\n` counts when not empty.
pub fn model(input: &[u8], max: usize) -> Vec<Result<Vec<u8>, usize>> {
    let mut segments: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if segments.last().is_some_and(|last| last.is_empty()) {
        segments.pop();
    }
    segments
        .into_iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > max { Err(line.len()) } else { Ok(line.to_vec()) }
        })
        .collect()
}

/// Checks what a framer gave for `input` with bound `max` (its `lines`, and how it `end`ed) against
/// [`model`]: every line before the first over-long one, then a clean end, or `TooLong` for that line.
pub fn check_framed(input: &[u8], max: usize, lines: &[Vec<u8>], end: &Result<(), TooLong>) -> Result<(), String> {
    let want = model(input, max);
    let fit = want.iter().take_while(|line| line.is_ok()).count();
    let want_lines: Vec<Vec<u8>> = want[..fit].iter().flatten().cloned().collect();
    if lines != want_lines.as_slice() {
        return Err(format!("framer gave {lines:?}, the model {want_lines:?}"));
    }
    match (end, want.get(fit)) {
        (Ok(()), None) => Ok(()),
        (Err(TooLong { seen }), Some(Err(len))) if *seen > max && seen <= len => Ok(()),
        (end, want) => Err(format!("framer ended with {end:?}, expected {want:?} (bound {max})")),
    }
}

/// Reads an escaped transcript back into bytes (the inverse of `text::push_escaped`), or says where
/// it is not one: the escaping is unambiguous exactly when this gives back what went in.
pub fn unescape(shown: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = shown.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            continue;
        }
        match chars.next() {
            Some('\\') => out.push(b'\\'),
            Some('n') => out.push(b'\n'),
            Some('r') => out.push(b'\r'),
            Some('e') => out.push(0x1b),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(u8::from_str_radix(&hex, 16).map_err(|_| format!("bad \\x{hex}"))?);
            }
            Some('u') => {
                let rest: String = chars.by_ref().take_while(|&c| c != '}').collect();
                let code = rest.strip_prefix('{').and_then(|h| u32::from_str_radix(h, 16).ok());
                let c = code.and_then(char::from_u32).ok_or_else(|| format!("bad \\u{rest}}}"))?;
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
            }
            other => return Err(format!("a backslash followed by {other:?}")),
        }
    }
    Ok(out)
}

/// The escaper's promises on `data`: the text holds no control character but tab, and reads back
/// to exactly `data`.
pub fn check_escaped(data: &[u8]) -> Result<(), String> {
    let shown = netpair::text::escaped(data);
    if let Some(c) = shown.chars().find(|&c| c.is_control() && c != '\t') {
        return Err(format!("{c:?} left raw in {shown:?}"));
    }
    match unescape(&shown) {
        Ok(back) if back == data => Ok(()),
        Ok(back) => Err(format!("{data:?} shown as {shown:?} reads back as {back:?}")),
        Err(e) => Err(format!("{data:?} shown as {shown:?}: {e}")),
    }
}
