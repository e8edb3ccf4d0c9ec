//! Binding every socket a server serves: each kind asked for, on every address its host name
//! resolves to, with TCP and UDP sharing one port number (also when the OS picks it, for `--port 0`).

use crate::config::{Listen, ServerConfig};
use crate::error::{Error, Result};
use crate::net::{MAX_TRANSPORTS, Settings, Tokens, Transport, resolve};
use crate::proto::{Endpoint, Proto};

/// How many times a port the OS picked is tried for the other sockets before giving up: another
/// program may take it on one protocol in the moment between.
const ATTEMPTS: usize = 8;

/// Every transport of `config`, bound, in the order `Listening on` shows them.
pub(super) fn all(config: &ServerConfig) -> Result<Vec<(Proto, Transport)>> {
    let wanted = addresses(config)?;
    if wanted.len() > MAX_TRANSPORTS {
        return Err(Error::Usage(format!(
            "{} sockets asked for (kinds times addresses); one server serves at most {MAX_TRANSPORTS}",
            wanted.len()
        )));
    }
    let mut attempt = 1;
    loop {
        match bind_once(config, &wanted) {
            Err(Error::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse && attempt < ATTEMPTS => {
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The sockets to bind: each `Listen` of the config, a host name's every address apart.
fn addresses(config: &ServerConfig) -> Result<Vec<Listen>> {
    let first = Listen {
        proto: config.common.proto,
        endpoint: config.common.endpoint.clone(),
        max_message: config.common.max_message,
    };
    let mut wanted = Vec::new();
    for listen in std::iter::once(first).chain(config.also.iter().cloned()) {
        let Endpoint::Inet { host, port } = &listen.endpoint else {
            wanted.push(listen);
            continue;
        };
        let mut addrs = resolve(host, *port)?;
        addrs.dedup();
        if addrs.len() == 1 {
            wanted.push(listen);
            continue;
        }
        for addr in addrs {
            let endpoint = Endpoint::Inet { host: addr.ip().to_string(), port: *port };
            wanted.push(Listen { endpoint, ..listen.clone() });
        }
    }
    Ok(wanted)
}

/// Binds each of `wanted` in turn; the first port the OS picks is the one the others with port 0 get.
fn bind_once(config: &ServerConfig, wanted: &[Listen]) -> Result<Vec<(Proto, Transport)>> {
    let mut picked = None;
    let mut bound = Vec::new();
    for (index, listen) in wanted.iter().enumerate() {
        let endpoint = match (&listen.endpoint, picked) {
            (Endpoint::Inet { host, port: 0 }, Some(port)) => Endpoint::Inet { host: host.clone(), port },
            (endpoint, _) => endpoint.clone(),
        };
        let settings = Settings {
            proto: listen.proto,
            framing: config.common.framing,
            max_message: listen.max_message,
            max_peers: if config.once { 1 } else { config.max_clients },
            tokens: Tokens::of(index),
            once: config.once,
            max_buffered: config.max_buffered,
            nodelay: config.common.nodelay,
            writes: 1,
            kernel_account: config.kernel_account,
        };
        let transport = Transport::listen(&settings, &endpoint)?;
        if picked.is_none() && matches!(listen.endpoint, Endpoint::Inet { port: 0, .. }) {
            picked = transport.local_addr().map(|addr| addr.port());
        }
        bound.push((listen.proto, transport));
    }
    Ok(bound)
}
