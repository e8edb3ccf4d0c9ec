//! Runs every script in `scripts/` as a person would (bash, from the repo root) against the binary
//! under test, so what they claim about the transports stays true.
#![allow(unsafe_code)] // a test drives its children with raw calls (kill, pre_exec, SO_LINGER)

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{Output, Process};

/// The longest a script may run: lossy-link.sh takes about 20s, the others a few seconds.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// One script at a time: they time replies and count drops, and the machine has few cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `scripts/NAME` to the end, with `NETPAIR` set so it does not build a binary of its own.
fn run_script(name: &str) -> Output {
    run_script_with(name, &[])
}

/// [`run_script`] with more of the environment set (`vars`: name, value).
fn run_script_with(name: &str, vars: &[(&str, &str)]) -> Output {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut command = Command::new("bash");
    command
        .arg(format!("scripts/{name}"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NETPAIR", env!("CARGO_BIN_EXE_netpair"))
        .envs(vars.iter().copied());
    let mut process = Process::spawn(command, Stdio::null());
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    while !process.has_exited() {
        if Instant::now() >= deadline {
            // SIGTERM, not SIGKILL: the script's trap then stops its servers and deletes its
            // namespaces. The process is killed outright when dropped, if it has not ended by then.
            // SAFETY: kill(2) on our own child's pid, not yet reaped.
            unsafe { libc::kill(process.id() as libc::pid_t, libc::SIGTERM) };
            let grace = Instant::now() + Duration::from_secs(10);
            while !process.has_exited() && Instant::now() < grace {
                thread::sleep(Duration::from_millis(50));
            }
            panic!(
                "{name} still running after {SCRIPT_DEADLINE:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                process.stdout(),
                process.stderr()
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
    process.wait()
}

fn assert_green(name: &str) -> Output {
    let out = run_script(name);
    assert_eq!(out.code, Some(0), "{name} failed:{out}");
    out
}

/// bench.sh's part 0: the C server it measures `netpair server` against writes the same transcript.
#[test]
fn bench_sh_baseline_writes_netpair_servers_transcript() {
    let out = run_script_with("bench.sh", &[("PARTS", "0")]);
    assert_eq!(out.code, Some(0), "bench.sh PARTS=0 failed:{out}");
    assert!(out.stdout().contains("ok: the same "), "no check made (no C compiler?):{out}");
}

#[test]
fn compare_sh() {
    assert_green("compare.sh");
}

#[test]
fn boundaries_sh() {
    assert_green("boundaries.sh");
}

#[test]
fn big_messages_sh() {
    assert_green("big-messages.sh");
}

#[test]
fn no_server_sh() {
    assert_green("no-server.sh");
}

#[test]
fn server_restart_sh() {
    assert_green("server-restart.sh");
}

/// Needs root, `ip netns` and `nft`; where any is missing the script says SKIP and exits 0.
#[test]
fn lossy_link_sh() {
    let out = assert_green("lossy-link.sh");
    if skipped("lossy-link.sh", &out) {
        return;
    }
    assert!(out.stdout().contains("ok: udp: lost "), "{out}");
}

#[test]
fn real_link_sh() {
    let out = assert_green("real-link.sh");
    if skipped("real-link.sh", &out) {
        return;
    }
    let stdout = out.stdout();
    assert!(stdout.contains("against the netpair server at 10.79.0.1"), "{out}");
    assert!(stdout.contains("ok: udp: lost ") && stdout.contains("ok: tcp: the kernel retransmitted"), "{out}");
}

/// Whether a namespace script said SKIP (no root, ip or nft here); under CI=true that is a failure.
fn skipped(name: &str, out: &Output) -> bool {
    let stdout = out.stdout();
    let Some(why) = stdout.lines().find(|line| line.starts_with("SKIP: ")) else { return false };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{name} cannot run under CI: {why}");
    eprintln!("{name} skipped: {why}");
    true
}

/// A lesson: runs in the lab (root, ip, nft), says SKIP elsewhere, and must have checked something.
fn lesson(name: &str) {
    let out = assert_green(name);
    if skipped(name, &out) {
        return;
    }
    assert!(out.stdout().contains("  ok: "), "{name} checked nothing: {out}");
}

#[test]
fn lesson_duplication_sh() {
    lesson("lesson-duplication.sh");
}

#[test]
fn lesson_drop_or_reject_sh() {
    lesson("lesson-drop-or-reject.sh");
}

#[test]
fn lesson_fragments_sh() {
    lesson("lesson-fragments.sh");
}

#[test]
fn lesson_nagle_sh() {
    lesson("lesson-nagle.sh");
}

#[test]
fn lesson_close_sh() {
    lesson("lesson-close.sh");
}

#[test]
fn lesson_handshake_sh() {
    lesson("lesson-handshake.sh");
}

#[test]
fn lesson_buffer_overflow_sh() {
    lesson("lesson-buffer-overflow.sh");
}
