//! The `netpair` binary: parse the command line, start logging, run, map the outcome to an exit status.

use std::io::Write;
use std::process::ExitCode;

use log::LevelFilter;

use netpair::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::from_env() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let (verbose, quiet) = cli.verbosity();
    init_logging(verbose, quiet);
    match cli.into_config().and_then(netpair::run) {
        Ok(code) => ExitCode::from(code),
        // Somebody closed our stdout (`netpair client | head -1`): nothing more to say.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            // One write: the line never comes out in pieces on a stderr shared with others.
            let _ = std::io::stderr().write_all(format!("netpair: error: {err}\n").as_bytes());
            ExitCode::from(err.exit_code())
        }
    }
}

/// Diagnostics to stderr as `netpair: warning: …`; `-v`/`-q` move the level, `RUST_LOG` overrides it.
fn init_logging(verbose: u8, quiet: u8) {
    let level = match (verbose, quiet) {
        (0, 0) => LevelFilter::Warn,
        (1, _) => LevelFilter::Info,
        (2, _) => LevelFilter::Debug,
        (_, 0) => LevelFilter::Trace,
        (_, 1) => LevelFilter::Error,
        _ => LevelFilter::Off,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(buf, "netpair: {level}: {}", record.args())
    });
    builder.init();
}
