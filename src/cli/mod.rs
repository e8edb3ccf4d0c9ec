//! The command line, the only user of clap: each subcommand's flags (`args`), how values are spelled
//! (`values`), and the checks that turn them into a [`Config`](crate::config::Config) (`check`).

mod args;
mod check;
mod examples;
mod generate;
mod values;

use std::ffi::OsString;

use clap::error::ErrorKind;
use clap::{Command as ClapCommand, CommandFactory, FromArgMatches, Parser};

use self::args::Command;
use crate::error::exit;

pub use self::values::{parse_duration, parse_size};

/// Run the socket tutorial's conversation over TCP, UDP, Unix stream or Unix datagram sockets.
#[derive(Debug, Parser)]
#[command(
    name = "netpair",
    version,
    subcommand_required = true,
    arg_required_else_help = true,
    // A flag given twice takes its last value, so one after the subcommand wins over one before it.
    args_override_self = true,
    after_help = format!("{BEFORE_OR_AFTER}\n\n{}", exit::HELP),
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

const BEFORE_OR_AFTER: &str = "\
Each command takes its own options (`netpair server --help` lists the server's), before or after
its name: `netpair --proto udp server` is `netpair server --proto udp`.";

impl Cli {
    /// Parses the process's arguments. `--help`, `--version` and usage errors are the `Err`, to be printed.
    pub fn from_env() -> Result<Cli, clap::Error> {
        Cli::from_args(std::env::args_os())
    }

    /// Parses `args`, the first being the program name.
    pub fn from_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        // What `Parser::try_parse_from` does, with the words put in order first by the same `Command`.
        let mut command = Cli::command();
        let args = hoist(&command, args.into_iter().map(Into::into).collect())?;
        let mut matches = command.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|err| err.format(&mut command))
    }

    /// `-v` and `-q`, each counted, for the log level.
    pub fn verbosity(&self) -> (u8, u8) {
        let v = match &self.command {
            Command::Server(args) => &args.verbosity,
            Command::Client(args) => &args.verbosity,
            Command::Compare(args) => &args.verbosity,
            Command::Bench(args) => &args.verbosity,
            Command::Lab(args) => &args.verbosity,
            Command::Completions(_) | Command::Man => return (0, 0),
        };
        (v.verbose, v.quiet)
    }
}

/// Moves the options written before the subcommand's name to just after it, so that
/// `netpair --proto udp server` parses as `netpair server --proto udp`: each subcommand then defines
/// its own options once and takes only those. One it does not take is an error naming both. The
/// scan stops at a word no subcommand knows (`-h`, a misspelt flag), leaving clap to report it.
fn hoist(cli: &ClapCommand, mut args: Vec<OsString>) -> Result<Vec<OsString>, clap::Error> {
    let mut flags: Vec<String> = Vec::new();
    let mut at = 1;
    while let Some(word) = args.get(at).and_then(|word| word.to_str()) {
        if let Some(sub) = cli.find_subcommand(word) {
            if let Some(flag) = flags.iter().find(|flag| find(sub, flag).is_none()) {
                let name = sub.get_name();
                return Err(clap::Error::raw(
                    ErrorKind::UnknownArgument,
                    format!("{name} takes no {flag} (`netpair {name} --help` lists what it takes)\n"),
                ));
            }
            args[1..=at].rotate_right(1);
            return Ok(args);
        }
        let Some((found, words)) = flags_at(cli, &args[at..]) else { return Ok(args) };
        flags.extend(found);
        at += words;
    }
    match flags.first() {
        Some(flag) if at == args.len() => Err(clap::Error::raw(
            ErrorKind::MissingSubcommand,
            format!("{flag} needs a command after it: server, client, compare or bench (`netpair --help`)\n"),
        )),
        _ => Ok(args),
    }
}

/// The flags written at the start of `words` (`--port 5001`, `--port=5001`, `-vq`) if a subcommand
/// knows them all, with how many words they take.
fn flags_at(cli: &ClapCommand, words: &[OsString]) -> Option<(Vec<String>, usize)> {
    let word = words.first()?.to_str()?;
    let any = |flag: &str| cli.get_subcommands().find_map(|sub| find(sub, flag));
    if let Some(long) = word.strip_prefix("--") {
        let (name, value) = long.split_once('=').map_or((long, None), |(name, value)| (name, Some(value)));
        let flag = format!("--{name}");
        let arg = any(&flag)?;
        let takes_value = arg.get_action().takes_values() && value.is_none();
        return (!takes_value || words.len() > 1).then(|| (vec![flag], 1 + usize::from(takes_value)));
    }
    // A cluster of short flags; none of netpair's short flags takes a value.
    let shorts: Vec<String> = word.strip_prefix('-')?.chars().map(|c| format!("-{c}")).collect();
    let known =
        !shorts.is_empty() && shorts.iter().all(|flag| any(flag).is_some_and(|a| !a.get_action().takes_values()));
    known.then_some((shorts, 1))
}

/// The argument `flag` (`--name` or `-c`) names in `sub`.
fn find<'a>(sub: &'a ClapCommand, flag: &str) -> Option<&'a clap::Arg> {
    sub.get_arguments().find(|arg| match flag.strip_prefix("--") {
        Some(long) => arg.get_long() == Some(long),
        None => flag.strip_prefix('-').and_then(|c| c.parse().ok()).is_some_and(|c| arg.get_short() == Some(c)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    /// A flag several subcommands take must take a value in all or in none, for `hoist` to skip it right.
    #[test]
    fn a_shared_flag_takes_a_value_everywhere_or_nowhere() {
        let cli = Cli::command();
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                for other in cli.get_subcommands() {
                    let same = other.get_arguments().find(|o| o.get_long() == arg.get_long());
                    if let Some(same) = same {
                        let takes = |a: &clap::Arg| a.get_action().takes_values();
                        assert_eq!(takes(arg), takes(same), "{:?} in {} and {}", arg.get_long(), sub, other);
                    }
                }
            }
        }
    }

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|a| a.to_string()).collect()
    }

    fn hoisted(args: &[&str]) -> Result<Vec<String>, String> {
        let args = args.iter().map(OsString::from).collect();
        hoist(&Cli::command(), args)
            .map(|args| args.into_iter().map(|a| a.into_string().unwrap_or_default()).collect())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn flags_before_the_subcommand_move_after_it() {
        assert_eq!(
            hoisted(&["np", "--proto", "udp", "-vq", "--port=0", "server", "--once"]),
            Ok(strings(&["np", "server", "--proto", "udp", "-vq", "--port=0", "--once"]))
        );
        // A value that happens to be a subcommand's name is still a value.
        assert_eq!(hoisted(&["np", "--host", "server", "client"]), Ok(strings(&["np", "client", "--host", "server"])));
        // Left alone: nothing to move, or a word only clap can judge.
        for args in [&["np", "server", "--once"][..], &["np", "--bogus", "server"], &["np", "-h", "server"]] {
            assert_eq!(hoisted(args), Ok(strings(args)));
        }
    }

    #[test]
    fn a_flag_the_subcommand_does_not_take_is_named() {
        let err = hoisted(&["np", "--reply", "echo", "compare"]).unwrap_err();
        assert!(err.contains("compare takes no --reply"), "{err}");
        let err = hoisted(&["np", "--framing", "raw", "bench"]).unwrap_err();
        assert!(err.contains("bench takes no --framing"), "{err}");
        let err = hoisted(&["np", "--proto", "udp"]).unwrap_err();
        assert!(err.contains("--proto needs a command after it"), "{err}");
    }
}
