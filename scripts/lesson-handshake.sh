#!/usr/bin/env bash
# lesson-handshake.sh: what a connection costs. `netpair bench --reconnect` (netperf's TCP_CRR)
# opens a new socket for every message: over TCP that is a three-way handshake before the message
# and a close after it, over UDP just a new socket. Across the lab's router, TCP's round trip from
# connect to reply takes one more network round trip than UDP's (SYN, SYN-ACK, then the message),
# and its kernels do more work per connection, so it manages fewer connections per second.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
: >"$NP_TMP/empty"
np_run bench "$NP_TMP/empty" 60 "$NETPAIR" lab bench --reconnect --proto tcp,udp --clients 1 --duration 2s \
  --warmup 200ms --json || fail "bench --reconnect: exit $?"
# figure PROTO KEY: one of bench's figures.
figure() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["results"][sys.argv[2]][sys.argv[3]])' "$(out bench)" "$1" "$2"; }
tcp_rate=$(figure tcp round_trips_per_s) udp_rate=$(figure udp round_trips_per_s)
tcp_p50=$(figure tcp rtt_p50_us) udp_p50=$(figure udp rtt_p50_us)
tcp_rate=$(printf '%.0f' "$tcp_rate") udp_rate=$(printf '%.0f' "$udp_rate")
echo "A new connection (a new socket) for every message, one client, across the lab:"
printf '  tcp: %8.0f connections/s, median %6.1f us from connect to reply\n' "$tcp_rate" "$tcp_p50"
printf '  udp: %8.0f sockets/s,     median %6.1f us from socket to reply\n' "$udp_rate" "$udp_p50"
echo
echo "Checks:"
check "tcp: the handshake makes each message take longer (median $tcp_p50 us against $udp_p50 us)" \
  python3 -c "import sys; sys.exit(0 if $tcp_p50 > $udp_p50 else 1)"
check "tcp: fewer connections per second than udp's sockets ($tcp_rate against $udp_rate)" \
  [ "$tcp_rate" -lt "$udp_rate" ]
