//! `netpair completions SHELL` and `netpair man`, made from the command line's definitions, tried
//! in the programs that read them: the bash script in a real bash, the page in groff and man.
//! Without a program the test says it skipped; under `CI=true` (where `.ci/run` installs them) it fails.

mod common;

use std::process::Command;

use common::{Output, netpair, run};

/// Whether `name` can run here; false (the test then skips) only outside CI.
fn have(name: &str) -> bool {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output();
    if found.is_ok_and(|o| o.status.success()) {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "{name} is needed here (CI=true): .ci/run installs it");
    eprintln!("skipped: {name} is not installed (.ci/run installs it)");
    false
}

/// `netpair ARGS`'s output, which must be a success with nothing on stderr.
fn generated(args: &[&str]) -> Output {
    let out = run(netpair(args), b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr(), "", "{out}");
    assert!(!out.stdout.is_empty(), "{out}");
    out
}

/// What bash's completion offers for the words of `line` (the last one being completed), with the
/// script sourced as `/etc/bash_completion.d` would, in a non-interactive shell.
fn complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let shell = r#"
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        prev=""; [ $# -gt 1 ] && prev="${COMP_WORDS[COMP_CWORD-1]}"
        _netpair netpair "${COMP_WORDS[COMP_CWORD]}" "$prev"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let mut command = Command::new("bash");
    command.args(["--norc", "--noprofile", "-c", shell, "bash"]).arg(script).args(words);
    let out = run(command, b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stderr(), "", "{out}");
    out.stdout().lines().map(str::to_string).collect()
}

/// Terminal output without its overstrikes (`X\bX` is a bold X, `_\bX` an underlined one): each
/// backspace and the character before it go.
fn plain(text: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in text.chars() {
        if c == '\u{8}' {
            out.pop();
            continue;
        }
        out.push(c);
    }
    out.into_iter().collect()
}

#[test]
fn bash_completes_commands_flags_and_values() {
    if !have("bash") {
        return;
    }
    let dir = common::temp_dir();
    let script = dir.path().join("netpair.bash");
    std::fs::write(&script, generated(&["completions", "bash"]).stdout).expect("writing the script");
    // A flag before the command's name is taken (`netpair --proto udp server`), so it completes there too.
    let offered = complete(&script, &["netpair", "--pro"]);
    assert!(offered.contains(&"--proto".to_string()), "{offered:?}");
    assert_eq!(complete(&script, &["netpair", "--prot"]), ["--proto"]);
    assert_eq!(complete(&script, &["netpair", "ser"]), ["server"]);
    assert_eq!(complete(&script, &["netpair", "client", "--time"]), ["--timeout"]);
    assert_eq!(complete(&script, &["netpair", "client", "--proto", "unixg"]), ["unixgram"]);
    assert_eq!(complete(&script, &["netpair", "completions", "fi"]), ["fish"]);
}

#[test]
fn every_shell_gets_a_script() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = generated(&["completions", shell]);
        assert!(out.stdout().contains("netpair"), "{shell}: {out}");
    }
    let out = run(netpair(&["completions", "tcsh"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
}

#[test]
fn the_man_page_renders_without_warnings() {
    let page = generated(&["man"]).stdout;
    if have("groff") {
        let mut groff = Command::new("groff");
        groff.args(["-man", "-Tutf8", "-ww"]);
        let out = run(groff, &page);
        assert_eq!(out.code, Some(0), "{out}");
        assert_eq!(out.stderr(), "", "groff warned: {out}");
        let text = plain(&out.stdout());
        for command in ["server", "client", "compare", "bench", "completions", "man"] {
            assert!(text.contains(&format!("netpair {command}")), "{command}: {out}");
        }
        // Each command's examples, as its --help ends with them.
        assert!(
            text.contains("Examples:") && text.contains("printf 'Hello TechBeamers\\nq\\n' | netpair client"),
            "{out}"
        );
    }
    if have("man") {
        let dir = common::temp_dir();
        let path = dir.path().join("netpair.1");
        std::fs::write(&path, &page).expect("writing the page");
        let mut man = Command::new("man");
        man.args(["--warnings=w", "-l"]).arg(&path).env("MANPAGER", "cat").env("MANWIDTH", "100");
        let out = run(man, b"");
        assert_eq!(out.code, Some(0), "{out}");
        assert_eq!(out.stderr(), "", "man warned: {out}");
        let text = plain(&out.stdout());
        assert!(text.contains("EXIT STATUS") && text.contains("--max-message"), "{out}");
    }
}
