//! Shell completions and the manual page, generated from the same definitions as `--help`.

use clap::{Command as ClapCommand, CommandFactory};
use clap_mangen::Man;
use roff::{Roff, bold, roman};

use super::Cli;
use crate::error::exit;

/// The completion script for `shell`, for the binary named `netpair`.
pub(super) fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut with_hoisted_flags(Cli::command()), "netpair", &mut out);
    out
}

/// The command as a shell sees it: every subcommand's flags are also taken before the subcommand's
/// name (`netpair --proto udp server`, see `hoist`), so they are completed there too.
fn with_hoisted_flags(mut cli: ClapCommand) -> ClapCommand {
    let mut flags: Vec<clap::Arg> = Vec::new();
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments().filter(|arg| !arg.is_positional()) {
            if !flags.iter().any(|f| f.get_id() == arg.get_id()) {
                flags.push(arg.clone());
            }
        }
    }
    for flag in flags {
        cli = cli.arg(flag);
    }
    cli
}

/// The whole manual in one page: the top level, then each command with its synopsis and options,
/// then the exit statuses.
pub(super) fn man() -> Vec<u8> {
    let mut cli = Cli::command();
    cli.build();
    let page = Man::new(cli.clone()).title("NETPAIR").section("1").manual("netpair manual");
    let mut out = Vec::new();
    for render in [Man::render_title, Man::render_name_section, Man::render_synopsis_section] {
        piece(&mut out, true, |w| render(&page, w));
    }
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut roff, super::BEFORE_OR_AFTER);
    paragraphs(&mut roff, "Each command is described below; `netpair COMMAND --help` says the same.");
    roff.control("SH", ["COMMANDS"]);
    push(&mut out, &roff);
    for sub in cli.get_subcommands().filter(|sub| sub.get_name() != "help") {
        let mut roff = Roff::new();
        roff.control("SS", [sub.get_bin_name().unwrap_or(sub.get_name())]);
        paragraphs(&mut roff, &sub.get_long_about().or(sub.get_about()).map(|a| a.to_string()).unwrap_or_default());
        roff.control("PP", []);
        push(&mut out, &roff);
        let page = Man::new(sub.clone());
        // Each command's synopsis and options, as subsections' bodies: their own headings go.
        piece(&mut out, false, |w| page.render_synopsis_section(w));
        if sub.get_arguments().any(|arg| !arg.is_hide_set()) {
            piece(&mut out, false, |w| page.render_options_section(w));
        }
        let examples = super::examples::of(sub.get_name());
        if !examples.is_empty() {
            let mut roff = Roff::new();
            roff.control("PP", []).text([roman("Examples:")]);
            for example in examples {
                roff.control("TP", []).text([bold(example.command)]).text([roman(example.does)]);
            }
            push(&mut out, &roff);
        }
    }
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    // `  N  meaning`, a longer meaning going on in lines of its own.
    let mut statuses: Vec<(&str, String)> = Vec::new();
    for line in exit::HELP.lines().skip(1) {
        match (line.trim_start().split_once("  "), statuses.last_mut()) {
            (Some((code, meaning)), _) if code.chars().all(|c| c.is_ascii_digit()) => {
                statuses.push((code, meaning.to_string()))
            }
            (_, Some((_, meaning))) => *meaning = format!("{meaning} {}", line.trim()),
            (_, None) => {}
        }
    }
    for (code, meaning) in statuses {
        roff.control("TP", []).text([bold(code)]).text([roman(meaning)]);
    }
    push(&mut out, &roff);
    piece(&mut out, true, |w| page.render_version_section(w));
    ascii(&String::from_utf8_lossy(&out)).into_bytes()
}

/// Roff that any troff reads as it is: each character past ASCII as groff's `\[uXXXX]` escape
/// (without it, `groff` reads UTF-8 as Latin-1 bytes unless run through `preconv`, as `man` does).
fn ascii(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len());
    for c in roff.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// Appends what `render` writes, without the preamble every rendering repeats, and with its section
/// headings dropped unless `headings` (a command's synopsis and options go in its subsection).
fn piece(out: &mut Vec<u8>, headings: bool, render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) {
    let mut text = Vec::new();
    // Writing into memory cannot fail.
    let _ = render(&mut text);
    let text = String::from_utf8_lossy(&text);
    let first = out.is_empty();
    for line in text.lines() {
        let preamble = line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq");
        if (preamble && !first) || (line.starts_with(".SH ") && !headings) {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
}

/// Appends roff made here, without the preamble.
fn push(out: &mut Vec<u8>, roff: &Roff) {
    out.extend_from_slice(roff.to_roff().as_bytes());
}

/// Text as roff paragraphs: a blank line starts a new one; the lines of one are filled together.
fn paragraphs(roff: &mut Roff, text: &str) {
    roff.control("PP", []);
    for line in text.lines() {
        if line.trim().is_empty() {
            roff.control("PP", []);
        } else {
            roff.text([roman(line)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_sees_flags_on_both_sides_of_the_command() {
        let cli = with_hoisted_flags(Cli::command());
        cli.clone().debug_assert();
        for long in ["proto", "port", "max-message", "timeout", "quiet"] {
            assert!(cli.get_arguments().any(|a| a.get_long() == Some(long)), "--{long}");
        }
    }

    #[test]
    fn the_man_page_has_every_command_and_the_exit_statuses() {
        let page = String::from_utf8(man()).expect("roff is text");
        for heading in ["netpair server", "netpair client", "netpair compare", "netpair bench", "EXIT STATUS"] {
            assert!(page.contains(heading), "{heading}:\n{page}");
        }
        assert_eq!(page.matches(".ds Aq \\(aq").count(), 1, "one preamble");
        assert!(page.is_ascii(), "{page}");
        assert!(page.contains("a reply came that no message asked for"), "a status of two lines, whole: {page}");
        assert_eq!(ascii("a … b"), "a \\[u2026] b");
    }
}
