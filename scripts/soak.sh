#!/usr/bin/env bash
# Soak: 10,000 concurrent TCP connections, then 10,000 UDP peers (each its own source port), each against
# one netpair server; every client must get exactly its own replies. Prints, per protocol: clients,
# messages, lost (must be 0 on loopback), the server's RSS per connection and its peak RSS (VmHWM).
#
# usage: scripts/soak.sh [CLIENTS [MESSAGES]]    defaults 10000 and 5; SOAK_PROTO=tcp (or udp) for one
#
# The load generator is tests/soak.rs (the ignored test `soak`), one single-threaded mio loop; the
# server is the release binary in its own process, so each has its own open-file limit.
set -euo pipefail
cd "$(dirname "$0")/.."

clients=${1:-10000}
messages=${2:-5}

# One socket per client here; the server raises its own limit to the hard one at start.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
limit=$(ulimit -n)
need=$((clients + 100))
if [[ $limit != unlimited ]] && ((limit < need)); then
  echo "soak: the open-file limit is $limit, below the $need that $clients clients need" >&2
  echo "soak: raise the hard limit (ulimit -Hn; limits.conf or systemd LimitNOFILE) or run fewer: $0 2000" >&2
  exit 1
fi

echo "soak: $clients clients x $messages messages each; $(nproc) cores, Linux $(uname -r), open files $limit"
started=$(date +%s)
SOAK_CLIENTS=$clients SOAK_MESSAGES=$messages SOAK_PROTO=${SOAK_PROTO:-tcp,udp} \
  cargo test --release --locked --quiet --test soak -- --ignored --nocapture --exact soak
echo "soak: done in $(($(date +%s) - started))s (build included)"
