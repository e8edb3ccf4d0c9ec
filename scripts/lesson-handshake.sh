#!/usr/bin/env bash
# lesson-handshake.sh: what a connection costs. `netpair bench --reconnect` (netperf's TCP_CRR)
# opens a new socket for every message: over TCP that is a three-way handshake before the message
# and a four-way close after it, about ten packets for one message and its reply; over UDP a new
# socket costs nothing on the wire, two packets. The lab's router counts them. (The speeds are
# shown too, but not checked: on a shared machine they say more about the machine than TCP.)
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
: >"$NP_TMP/empty"
for proto in tcp udp; do
  np_run "$proto" "$NP_TMP/empty" 60 "$NETPAIR" lab bench --reconnect --proto $proto --clients 1 --duration 1s \
    --warmup 100ms --json || fail "bench --reconnect --proto $proto: exit $?"
done
# figure PROTO WHAT: from bench's JSON (its first line) and the lab's (its last): rate, median, and
# the IP packets the router saw per message sent (warm-up included, as the router saw it too).
figure() {
  python3 - "$(out "$1")" "$1" "$2" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
bench, lab = json.loads(lines[0])["results"][sys.argv[2]], json.loads(lines[-1])
sent = bench["sent"] + bench["warmup"]["sent"]
packets = lab["network"]["to_server"]["packets"] + lab["network"]["to_client"]["packets"]
print({"rate": f'{bench["round_trips_per_s"]:.0f}', "p50": f'{bench["rtt_p50_us"]:.1f}',
       "per_message": f"{packets / sent:.1f}"}[sys.argv[3]])
PY
}
tcp_packets=$(figure tcp per_message) udp_packets=$(figure udp per_message)
echo "A new connection (a new socket) for every message, one client, across the lab:"
echo "  tcp: $tcp_packets packets per message; $(figure tcp rate) connections/s, median $(figure tcp p50) us from connect to reply"
echo "  udp: $udp_packets packets per message; $(figure udp rate) sockets/s, median $(figure udp p50) us from socket to reply"
echo
echo "Checks:"
check "tcp: a connection per message is 7 packets or more for each (handshake, message, reply, close): $tcp_packets" \
  python3 -c "import sys; sys.exit(0 if $tcp_packets >= 7 else 1)"
check "udp: a socket per message is still 2 packets for each: $udp_packets" \
  python3 -c "import sys; sys.exit(0 if 1.9 <= $udp_packets <= 2.2 else 1)"
