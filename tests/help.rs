//! `netpair --help` and every subcommand's, against the files in `tests/snapshots/`, so that any
//! change to what users read is seen in review. `UPDATE_SNAPSHOTS=1 cargo test --test help`
//! rewrites the files instead of comparing.

mod common;

use std::path::PathBuf;

use common::{netpair, run};
use netpair::error::exit;

/// The top level (no subcommand) and each subcommand.
const COMMANDS: [Option<&str>; 8] = [
    None,
    Some("server"),
    Some("client"),
    Some("compare"),
    Some("bench"),
    Some("lab"),
    Some("completions"),
    Some("man"),
];

#[test]
fn help_matches_the_snapshots() {
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut wrong = Vec::new();
    for command in COMMANDS {
        let name = command.unwrap_or("top");
        let long = help(command, "--help");
        let short = help(command, "-h");
        // Commands that only print text have exit statuses of their own.
        let statuses = if matches!(name, "completions" | "man") { exit::PRINT_HELP } else { exit::HELP };
        assert!(long.trim_end().ends_with(statuses), "`{name} --help` does not end with the exit statuses:\n{long}");
        if command.is_some() {
            // Which examples, and that they work: tests/examples.rs.
            assert!(long.contains("\nExamples:\n  "), "`{name} --help` has no examples:\n{long}");
        }
        wrong.extend(check(&format!("help-{name}.txt"), Some(&long), update));
        // `-h` has a snapshot of its own only where it differs (one line per option instead of a paragraph).
        wrong.extend(check(&format!("help-{name}-short.txt"), (short != long).then_some(&short), update));
    }
    assert!(
        wrong.is_empty(),
        "{}\nIf the change is meant, run `UPDATE_SNAPSHOTS=1 cargo test --test help`.",
        wrong.concat()
    );
}

/// Help is never wrapped to the terminal (clap's `wrap_help` feature is off), so the snapshots hold anywhere.
#[test]
fn help_does_not_depend_on_the_terminal_width() {
    let mut narrow = netpair(&["server", "--help"]);
    narrow.env("COLUMNS", "40");
    let out = run(narrow, b"");
    assert_eq!(out.stdout(), help(Some("server"), "--help"), "{out}");
}

/// `netpair [COMMAND] FLAG`'s stdout; it must exit 0 and say nothing on stderr.
fn help(command: Option<&str>, flag: &str) -> String {
    let args: Vec<&str> = command.into_iter().chain([flag]).collect();
    let out = run(netpair(&args), b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr(), "", "{out}");
    out.stdout()
}

/// Compares `tests/snapshots/FILE` with `want` (`None`: the file must not exist), or makes it so when
/// `update`. Returns what is wrong, as a diff.
fn check(file: &str, want: Option<&str>, update: bool) -> Option<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(file);
    let have = std::fs::read_to_string(&path).ok();
    if have.as_deref() == want {
        return None;
    }
    if update {
        let done = match want {
            Some(text) => std::fs::write(&path, text),
            None => std::fs::remove_file(&path),
        };
        done.unwrap_or_else(|e| panic!("updating {}: {e}", path.display()));
        return None;
    }
    Some(match (have, want) {
        (None, _) => format!("\n{file} is missing.\n"),
        (Some(_), None) => format!("\n{file} is not needed any more (`-h` and `--help` print the same).\n"),
        (Some(have), Some(want)) => format!("\n{file} differs (- snapshot, + now):\n{}", diff(&have, want)),
    })
}

/// The lines that differ between `old` and `new`, `-` and `+`, with one line of context around each change.
fn diff(old: &str, new: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (old.lines().collect(), new.lines().collect());
    // Longest common subsequence of lines, filled from the end: lcs[i][j] is for a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut lines = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            lines.push((' ', a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            lines.push(('-', a[i]));
            i += 1;
        } else {
            lines.push(('+', b[j]));
            j += 1;
        }
    }
    let changed = |k: usize| lines.get(k).is_some_and(|(mark, _)| *mark != ' ');
    let mut out = String::new();
    for (k, (mark, line)) in lines.iter().enumerate() {
        if changed(k) || changed(k + 1) || (k > 0 && changed(k - 1)) {
            out.push_str(&format!("{mark} {line}\n"));
        } else if k >= 2 && changed(k - 2) {
            out.push_str("  ...\n");
        }
    }
    out
}
