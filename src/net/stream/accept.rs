//! A stream server taking its new connections: each accepted, named, watched, or turned away (the
//! server full, or out of open files) with a line saying why.

use std::io::{self, Write};

use log::{debug, warn};
use mio::{Interest, Registry};

use super::Streams;
use super::conn::Conn;
use crate::error::describe;
use crate::net::Event;
use crate::net::socket::spare_file;

impl Streams {
    pub(super) fn accept(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut sock, mut name) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) =>
                {
                    if e.raw_os_error() == Some(libc::EMFILE) && self.turn_away_one() {
                        continue;
                    }
                    // The connection stays in the backlog; try again on the next tick rather than spin.
                    self.full
                        .warn(format_args!("cannot accept: {} (raise ulimit -n or lower --max-clients)", describe(&e)));
                    self.accept_paused = true;
                    return;
                }
                Err(e) => {
                    debug!("accept failed: {e}");
                    continue;
                }
            };
            self.accepted += 1;
            if name.is_empty() {
                name = format!("peer#{}", self.accepted);
            }
            if self.conns.len() >= self.max_peers {
                self.full.warn(format_args!("{}: turned away {name}", self.full_reason));
                let _ = sock.write(self.turned_away.as_bytes());
                continue;
            }
            sock.set_nodelay(self.nodelay);
            let id = self.conns.insert(Conn::new(sock, name, self.max_message));
            let conn = self.conns.get_mut(id).expect("just inserted");
            if let Err(e) = registry.register(&mut conn.sock, self.tokens.peer(id), Interest::READABLE) {
                warn!("cannot watch connection from {}: {e}", conn.name);
                self.conns.remove(id);
                continue;
            }
            out.push(Event::Connected(id));
        }
    }

    /// Out of file descriptors: gives up the spare one to accept a waiting client, tells it the server is
    /// full and closes it, so clients are turned away with a reason instead of hanging in the backlog.
    /// False when there is no spare or the accept fails anyway.
    fn turn_away_one(&mut self) -> bool {
        let (Some(listener), Some(spare)) = (&self.listener, self.spare.take()) else {
            return false;
        };
        drop(spare);
        let turned_away = match listener.accept() {
            Ok((mut sock, name)) => {
                self.full.warn(format_args!(
                    "out of open files (ulimit -n): turned away {}",
                    if name.is_empty() { "a client" } else { &name }
                ));
                let _ = sock.write(b"netpair: server full (out of open files); try again later\n");
                true
            }
            Err(_) => false,
        };
        self.spare = spare_file();
        turned_away
    }
}
