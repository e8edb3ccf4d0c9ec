//! `--plot FILE.svg` on bench and compare: the SVG is rendered with `rsvg-convert` (librsvg2-bin) to
//! a PNG of the plot's size, whose pixels hold a line in each transport's colour. Without
//! rsvg-convert (or python3, which decodes the PNG) these tests say SKIP; under CI=true they fail.

mod common;

use std::path::Path;
use std::process::Command;

use common::{netpair, run, temp_dir};

/// The plot's size, as `src/plot.rs` draws it.
const SIZE: (u32, u32) = (netpair::plot::WIDTH, netpair::plot::HEIGHT);
/// The first two series' colours, in `src/plot.rs`'s order.
const FIRST: [u8; 3] = [0x00, 0x72, 0xb2];
const SECOND: [u8; 3] = [0xd5, 0x5e, 0x00];

/// Whether rsvg-convert and python3 are here; under CI=true their absence is a failure.
fn can_render() -> bool {
    let works = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&str> = ["rsvg-convert", "python3"].into_iter().filter(|t| !works(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("{} not installed (apt-get install librsvg2-bin python3)", missing.join(" and "));
    assert!(std::env::var("CI").as_deref() != Ok("true"), "the plot tests cannot run under CI: {why}");
    println!("SKIP: {why}");
    false
}

/// Decodes an 8-bit RGB or RGBA PNG (what rsvg-convert writes): its width, height, and how many pixels hold
/// each of the given colours, exactly.
const DECODE: &str = r#"
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat, ihdr = 8, b"", None
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR": ihdr = body
    if kind == b"IDAT": idat += body
    pos += 12 + n
w, h, depth, colour = struct.unpack(">IIBB", ihdr[:10])
assert depth == 8 and colour in (2, 6), (depth, colour)
px = 4 if colour == 6 else 3
raw, stride, prev, rows = zlib.decompress(idat), w * px, bytearray(w * px), []
for y in range(h):
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - px] if i >= px else 0
        b, c = prev[i], prev[i - px] if i >= px else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
pixels = [bytes(r[i:i + 3]) for r in rows for i in range(0, stride, px)]
wanted = [bytes.fromhex(c) for c in sys.argv[2:]]
print(w, h, len(set(pixels)), *[sum(1 for p in pixels if p == c) for c in wanted])
"#;

/// Renders `svg` to PNG and decodes it: (width, height, distinct colours, pixels of each of `colours`).
fn render(svg: &Path, colours: &[[u8; 3]]) -> Vec<u64> {
    let png = svg.with_extension("png");
    let out = Command::new("rsvg-convert").arg(svg).arg("-o").arg(&png).output().expect("run rsvg-convert");
    assert!(out.status.success(), "rsvg-convert {}: {}", svg.display(), String::from_utf8_lossy(&out.stderr));
    let mut python = Command::new("python3");
    python.args(["-c", DECODE]).arg(&png);
    python.args(colours.iter().map(|c| c.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    let out = run(python, b"");
    assert_eq!(out.code, Some(0), "{out}");
    out.stdout().split_whitespace().map(|n| n.parse().expect("a number")).collect()
}

/// A plot of the run's size, more than background and axes, with a line of each series' colour.
fn assert_drawn(svg: &Path, series: usize, least: u64) {
    let text = std::fs::read_to_string(svg).unwrap_or_else(|e| panic!("reading {}: {e}", svg.display()));
    for label in ["p50", "p90", "p99", "p99.9", "round trip (", "percentile of round trips"] {
        assert!(text.contains(label), "{label} missing from the plot:\n{text}");
    }
    let colours = &[FIRST, SECOND][..series];
    let found = render(svg, colours);
    assert_eq!((found[0], found[1]), (u64::from(SIZE.0), u64::from(SIZE.1)), "size of {}", svg.display());
    // White, black, grey grid and text, antialiasing: a blank picture has very few colours.
    assert!(found[2] > 20, "only {} colours: the picture is blank", found[2]);
    for (n, pixels) in found[3..].iter().enumerate() {
        // A line 2 pixels wide across 570 pixels, and its legend (less where later lines cross it).
        assert!(*pixels > least, "series {n}'s colour covers only {pixels} pixels");
    }
}

#[test]
fn bench_draws_one_line_per_transport() {
    if !can_render() {
        return;
    }
    let dir = temp_dir();
    let svg = dir.path().join("bench.svg");
    let plot = svg.to_str().expect("UTF-8 path");
    let args = ["--proto", "tcp,udp", "bench", "--duration", "300ms", "--warmup", "50ms", "--plot", plot];
    let out = run(netpair(&args), b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout().contains("round trip p99.9"), "the table is still printed: {out}");
    assert_drawn(&svg, 2, 300);
}

#[test]
fn compare_draws_one_line_per_transport() {
    if !can_render() {
        return;
    }
    let dir = temp_dir();
    let svg = dir.path().join("compare.svg");
    let out = run(netpair(&["compare", "--messages", "50", "--plot", svg.to_str().expect("UTF-8 path")]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let text = std::fs::read_to_string(&svg).expect("the plot was written");
    for proto in ["tcp", "udp", "unix", "unixgram", "seqpacket"] {
        assert!(text.contains(&format!(">{proto}</text>")), "{proto} not in the legend:\n{text}");
    }
    // Five kinds whose round trips are alike on loopback: their lines lie over one another, so a
    // line is checked in the drawing (many points) and its colour only for more than its legend.
    let lines: Vec<&str> = text.split("<polyline").skip(1).collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(lines.iter().all(|l| l.split("points=").nth(1).is_some_and(|p| p.matches(',').count() > 10)), "{text}");
    assert_drawn(&svg, 2, 60);
}

#[test]
fn an_unwritable_plot_fails_before_the_run() {
    let dir = temp_dir();
    let missing = dir.path().join("no-such-dir").join("x.svg");
    let missing = missing.to_str().expect("UTF-8 path");
    // A 30 s bench would outlast the test's deadline: the check must come first.
    for args in [&["bench", "--duration", "30s", "--plot", missing][..], &["compare", "--plot", missing]] {
        let started = std::time::Instant::now();
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(1), "{out}");
        assert_eq!(out.stderr(), format!("netpair: error: cannot write --plot {missing}: no such file or directory\n"));
        assert_eq!(out.stdout(), "", "nothing was run: {out}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{out}");
    }
    // A directory is no file either; and a run that fails leaves no empty plot behind.
    let out = run(netpair(&["bench", "--plot", dir.path().to_str().expect("UTF-8 path")]), b"");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("cannot write --plot "), "{out}");
    let made = dir.path().join("made.svg");
    let port = common::free_port().to_string();
    let out = run(netpair(&["bench", "--connect", "--port", &port, "--plot", made.to_str().expect("UTF-8")]), b"");
    assert_eq!(out.code, Some(1), "nobody listens: {out}");
    assert!(!made.exists(), "an empty plot was left behind: {out}");
}
