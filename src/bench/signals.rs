//! SIGINT, SIGTERM and SIGHUP during a bench: the first ends the run early with what it measured;
//! a second ends the process at once, after removing the run's temporary directory and the socket
//! files of its in-process servers (nothing else would: `exit` runs no destructors).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Result, exit};
use crate::event_loop::on_signals;
use crate::net::SocketFile;

/// The signals that stop a bench. SIGQUIT keeps its default (a core dump is what it asks for).
const STOPPING: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// The flag the client threads watch, and what a second signal removes.
pub struct Signals {
    /// Set by the first signal: the clients send no more, and the run ends with what it measured.
    pub interrupted: Arc<AtomicBool>,
    /// Socket files outside the temporary directory (an in-process server's `--path`).
    files: Arc<Mutex<Vec<SocketFile>>>,
}

impl Signals {
    /// Catches the stopping signals from now on; `dir` is the run's temporary directory, which
    /// need not exist yet (catch first, then create it, so that no signal can leave it behind).
    pub fn catch(dir: &Path) -> Result<Signals> {
        let interrupted = Arc::new(AtomicBool::new(false));
        let files: Arc<Mutex<Vec<SocketFile>>> = Arc::default();
        let (flag, guarded, dir) = (interrupted.clone(), files.clone(), dir.to_path_buf());
        on_signals(&STOPPING, move || {
            if flag.swap(true, Ordering::SeqCst) {
                stop_now(&dir, &guarded);
            }
        })?;
        Ok(Signals { interrupted, files })
    }

    /// True once a signal came.
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// Removes `path` (an in-process server's socket file, just bound) if a second signal comes while
    /// the server runs. A Linux abstract name (`@name`) has no file.
    pub fn guard(&self, path: &Path) {
        if !path.as_os_str().as_encoded_bytes().starts_with(b"@") {
            self.files.lock().unwrap_or_else(PoisonError::into_inner).push(SocketFile::bound(path));
        }
    }

    /// Forgets the guarded files once their servers have stopped (and removed them themselves): a
    /// file made since at the same path is another's, which the guards would leave alone anyway.
    pub fn release(&self) {
        self.files.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

/// The second signal: remove what the run made, say so, and exit with "nothing measured" (3).
fn stop_now(dir: &PathBuf, files: &Mutex<Vec<SocketFile>>) -> ! {
    // Dropping a guard removes its file, if it is still the one the server made.
    files.lock().unwrap_or_else(PoisonError::into_inner).clear();
    let _ = std::fs::remove_dir_all(dir);
    let _ = io::stderr().write_all(b"netpair: interrupted again: stopped at once, with nothing reported\n");
    std::process::exit(i32::from(exit::LOST));
}
