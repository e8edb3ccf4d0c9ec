//! The round-trip distribution as an SVG picture (`--plot FILE.svg` of bench and compare): one line
//! per transport, percentile across (stretched towards p99.9: x = -log10(1 - p)), latency up. Built
//! from plain data by string formatting; the file itself is opened before a run and written after it.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The picture's size, in pixels.
pub const WIDTH: u32 = 800;
/// The picture's height, in pixels.
pub const HEIGHT: u32 = 480;
/// The highest percentile drawn, as a quantile: p99.9, 3 on the x axis.
const TOP: f64 = 0.999;
/// Margins around the plotting area: left (for the latency labels), right, top (the title), bottom.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP_MARGIN: f64 = 40.0;
const BOTTOM: f64 = 60.0;
/// One colour per series, in order (a colour-blind-safe set).
const COLOURS: [&str; 6] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

/// One transport's round trips: its name and points (quantile from 0 to 1, latency in nanoseconds),
/// quantiles increasing.
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// (quantile, nanoseconds), quantiles increasing.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// The points of sorted samples (nanoseconds): sample `i` of `n` stands at quantile (i + ½) / n.
    pub fn of_sorted(name: &str, sorted: &[u64]) -> Series {
        let n = sorted.len() as f64;
        let points = sorted.iter().enumerate().map(|(i, &ns)| ((i as f64 + 0.5) / n, ns as f64)).collect();
        Series { name: name.to_string(), points }
    }
}

/// The x position of quantile `p`, before scaling: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9.
fn stretch(p: f64) -> f64 {
    -(1.0 - p.clamp(0.0, TOP)).log10()
}

/// The latency axis: its unit, its ticks (in nanoseconds) and how a latency maps to 0..1 up it.
struct Scale {
    unit: &'static str,
    per_unit: f64,
    ticks: Vec<f64>,
    log: bool,
    low: f64,
    high: f64,
}

impl Scale {
    /// A linear axis from 0 unless the values spread over more than two decades; then a log one.
    fn for_values(min: f64, max: f64) -> Scale {
        let (unit, per_unit) = match max {
            m if m < 1e6 => ("µs", 1e3),
            m if m < 1e9 => ("ms", 1e6),
            _ => ("s", 1e9),
        };
        let max = max.max(1.0);
        if min > 0.0 && max / min > 100.0 {
            let (low, high) = (min.log10().floor(), max.log10().ceil());
            let ticks = (low as i32..=high as i32).map(|e| 10f64.powi(e)).collect();
            return Scale { unit, per_unit, ticks, log: true, low, high };
        }
        // 1, 2 or 5 times a power of ten, so that there are four to eight ticks.
        let raw = max / 5.0;
        let power = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].into_iter().map(|m| m * power).find(|&s| s >= raw).unwrap_or(10.0 * power);
        let high = (max / step).ceil() * step;
        let ticks = (0..=((high / step).round() as usize)).map(|i| i as f64 * step).collect();
        Scale { unit, per_unit, ticks, log: false, low: 0.0, high }
    }

    fn fraction(&self, ns: f64) -> f64 {
        if self.log {
            (ns.max(1.0).log10() - self.low) / (self.high - self.low).max(1e-9)
        } else {
            ns / self.high.max(1e-9)
        }
    }

    /// A tick's label in the axis's unit: "0", "250", "1.5", "0.01".
    fn label(&self, ns: f64) -> String {
        let value = ns / self.per_unit;
        let text = format!("{value:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The SVG document: a title, both axes labelled with their units, percentile ticks at p50, p90,
/// p99 and p99.9, latency ticks, a line per series in its own colour, and a legend.
pub fn svg(title: &str, series: &[Series]) -> String {
    let (w, h) = (f64::from(WIDTH), f64::from(HEIGHT));
    let (plot_w, plot_h) = (w - LEFT - RIGHT, h - TOP_MARGIN - BOTTOM);
    let all = series.iter().flat_map(|s| s.points.iter().map(|&(_, ns)| ns));
    let (min, max) = all.fold((f64::MAX, 0.0f64), |(lo, hi), ns| (lo.min(ns), hi.max(ns)));
    let scale = Scale::for_values(if min == f64::MAX { 0.0 } else { min }, max);
    let x_of = |p: f64| LEFT + stretch(p) / stretch(TOP) * plot_w;
    let y_of = |ns: f64| TOP_MARGIN + plot_h * (1.0 - scale.fraction(ns).clamp(0.0, 1.0));

    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(out, "<rect width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Grid and ticks: percentiles across, latencies up.
    for (p, label) in [(0.0, "p0"), (0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (TOP, "p99.9")] {
        let x = x_of(p);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{TOP_MARGIN}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP_MARGIN + plot_h,
            TOP_MARGIN + plot_h + 18.0
        );
    }
    for &tick in &scale.ticks {
        let y = y_of(tick);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#dddddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            scale.label(tick)
        );
    }
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP_MARGIN}\" width=\"{plot_w:.1}\" height=\"{plot_h:.1}\" fill=\"none\" \
         stroke=\"#000000\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">percentile of round trips (log scale towards \
         p99.9)</text>",
        LEFT + plot_w / 2.0,
        h - 14.0
    );
    let scale_word = if scale.log { ", log scale" } else { "" };
    let _ = writeln!(
        out,
        "<text transform=\"translate(20 {:.1}) rotate(-90)\" text-anchor=\"middle\">round trip ({}{scale_word})</text>",
        TOP_MARGIN + plot_h / 2.0,
        scale.unit
    );
    // One line per series, and its legend entry.
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|&&(p, _)| p <= TOP)
            .map(|&(p, ns)| format!("{:.1},{:.1}", x_of(p), y_of(ns)))
            .collect();
        if !points.is_empty() {
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                points.join(" ")
            );
        }
        let y = TOP_MARGIN + 10.0 + 22.0 * i as f64;
        let x = LEFT + plot_w + 16.0;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 24.0,
            x + 30.0,
            y + 4.0,
            escape(&s.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

/// Text safe inside an SVG element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The `--plot` file, opened before the run so that a path that cannot be written fails at once,
/// and written when the run is over. A file it had to create is removed if the run fails first.
pub struct PlotFile {
    path: PathBuf,
    file: Option<File>,
    created: bool,
}

impl PlotFile {
    /// Opens (or creates) `path` for writing, without touching what it holds yet; the error names
    /// the path and the flag.
    pub fn open(path: &Path) -> Result<PlotFile> {
        let created = !path.exists();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(format!("cannot write --plot {}", path.display()), e))?;
        Ok(PlotFile { path: path.to_path_buf(), file: Some(file), created })
    }

    /// Replaces the file's contents with `svg`.
    pub fn write(mut self, svg: &str) -> Result<()> {
        let written = match self.file.take() {
            Some(mut file) => file.set_len(0).and_then(|()| file.write_all(svg.as_bytes())).and_then(|()| file.flush()),
            None => Ok(()),
        };
        written.map_err(|e| Error::io(format!("writing --plot {}", self.path.display()), e))
    }
}

impl Drop for PlotFile {
    fn drop(&mut self) {
        // Never written (the run failed): a file this run made is not left behind empty.
        if self.file.is_some() && self.created {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_stretch_towards_the_tail() {
        assert!((stretch(0.9) - 1.0).abs() < 1e-9);
        assert!((stretch(0.99) - 2.0).abs() < 1e-9);
        assert!((stretch(1.0) - 3.0).abs() < 1e-9, "p100 is drawn at p99.9");
    }

    #[test]
    fn scales_pick_a_unit_and_round_ticks() {
        let s = Scale::for_values(10_000.0, 47_000.0);
        assert_eq!((s.unit, s.log), ("µs", false));
        assert_eq!(s.ticks.last().copied(), Some(50_000.0));
        assert_eq!(s.label(20_000.0), "20");
        let s = Scale::for_values(5_000.0, 3_000_000.0);
        assert_eq!((s.unit, s.log, s.ticks.len()), ("ms", true, 5), "1 µs to 10 ms");
        assert_eq!(s.label(1_000.0), "0.001");
    }

    #[test]
    fn the_document_names_every_series_and_escapes_text() {
        let a = Series::of_sorted("tcp", &[1_000, 2_000, 3_000]);
        assert_eq!(a.points[0], (0.5 / 3.0, 1_000.0));
        let doc = svg("a <b> & c", &[a, Series { name: "udp".into(), points: vec![] }]);
        assert!(doc.contains("a &lt;b&gt; &amp; c") && doc.contains(">tcp<") && doc.contains(">udp<"));
        assert_eq!(doc.matches("<polyline").count(), 1, "no line for a series with no points");
    }
}
