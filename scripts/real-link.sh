#!/usr/bin/env bash
# real-link.sh [N] [LOSS]: `netpair compare --connect` across a real link, as between two hosts.
#
# Two network namespaces joined by a veth pair (IPv4 10.79.0.1 and .2, IPv6 fd00:79::1 and ::2):
# `netpair --proto tcp,udp server --host 0.0.0.0` in one, `netpair compare --connect --host 10.79.0.1` in
# the other, with nftables in the server's namespace dropping 1 packet in LOSS (10) each way.
# Prints the table, then checks that its figures reconcile with what the kernel and nft counted:
# TCP delivers every reply (some late) and its kernel retransmitted; UDP's sent = received + lost,
# and every loss is a packet nft dropped (a request, or its reply) or one a receive buffer dropped.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

n=${1:-200} loss=${2:-10}
np_need_namespaces

srv=np-rls-$$ cli=np-rlc-$$
np_netns "$srv" 2>"$NP_TMP/netns.err" || skip "cannot create a network namespace: $(cat "$NP_TMP/netns.err")"
np_netns "$cli"
ip link add "nprl$$s" netns "$srv" type veth peer name "nprl$$c" netns "$cli"
for side in "$srv s 1" "$cli c 2"; do
  read -r ns dev host <<<"$side"
  ip -n "$ns" addr add "10.79.0.$host/24" dev "nprl$$$dev"
  ip -n "$ns" addr add "fd00:79::$host/64" dev "nprl$$$dev" nodad
  ip -n "$ns" link set "nprl$$$dev" up
  ip -n "$ns" link set lo up
done
in_srv=(ip netns exec "$srv")
in_cli=(ip netns exec "$cli")

np_server server "${in_srv[@]}" "$NETPAIR" --proto tcp,udp --host 0.0.0.0 --port 0 server
port=$NP_PORT
# Small packets (the conversation's) dropped and counted apart from the size probes' big ones.
"${in_srv[@]}" nft -f - 2>"$NP_TMP/nft.err" <<EOF || skip "nftables does not work here: $(cat "$NP_TMP/nft.err")"
table ip netpair_real {
  counter udp_in { }
  counter udp_out { }
  counter tcp_dropped { }
  chain input {
    type filter hook input priority 0; policy accept;
    udp dport $port meta length < 200 numgen random mod $loss == 0 counter name udp_in drop
    tcp dport $port numgen random mod $loss == 0 counter name tcp_dropped drop
  }
  chain output {
    type filter hook output priority 0; policy accept;
    udp sport $port meta length < 200 numgen random mod $loss == 0 counter name udp_out drop
    tcp sport $port numgen random mod $loss == 0 counter name tcp_dropped drop
  }
}
EOF
packets() { "${in_srv[@]}" nft list counter ip netpair_real "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

echo "server: netpair --proto tcp,udp server --host 0.0.0.0 (namespace $srv, 10.79.0.1, port $port)"
echo "client: netpair compare --connect --host 10.79.0.1 (namespace $cli); nft drops 1 packet in $loss each way"
echo
: >"$NP_TMP/empty"
np_run compare "$NP_TMP/empty" 300 "${in_cli[@]}" "$NETPAIR" compare --connect --host 10.79.0.1 --port "$port" \
  --messages "$n" --timeout 300ms || fail "compare exited $?"
cat "$(out compare)"
# The checks reconcile the --json run alone: nft's counts from here on.
"${in_srv[@]}" nft reset counters table ip netpair_real >/dev/null
np_run json "$NP_TMP/empty" 300 "${in_cli[@]}" "$NETPAIR" compare --connect --host 10.79.0.1 --port "$port" \
  --messages "$n" --timeout 300ms --json || fail "compare --json exited $?"
# field PROTO KEY[.KEY]: a figure of the --json run (0 when absent).
field() {
  python3 -c 'import json,sys
d = json.load(open(sys.argv[1]))[sys.argv[2]]
for k in sys.argv[3].split("."): d = d.get(k, 0) if isinstance(d, dict) else 0
print(d)' "$(out json)" "$@"
}

udp_dropped=$(($(packets udp_in) + $(packets udp_out)))
echo
echo "Checks (of the --json run):"
# (The client ends at its input's end: a reply to the last message still on its way then is not seen.)
tcp_seen=$(($(field tcp received) + $(field tcp late)))
check "tcp: every reply came: $(field tcp received) in time + $(field tcp late) late = $tcp_seen of $n" \
  [ "$tcp_seen" -ge $((n - 1)) ]
check "tcp: the kernel retransmitted $(field tcp kernel.retransmitted_segments) segments (nft dropped $(packets tcp_dropped) packets)" \
  [ "$(field tcp kernel.retransmitted_segments)" -gt 0 ]
check "udp: sent $(field udp sent) = received $(field udp received) + lost $(field udp lost)" \
  [ "$(field udp sent)" -eq $(($(field udp received) + $(field udp lost))) ]
check "udp: lost $(field udp lost) = nft dropped $udp_dropped + the client's receive buffer $(field udp kernel.receive_buffer_drops)" \
  [ "$(field udp lost)" -eq $((udp_dropped + $(field udp kernel.receive_buffer_drops))) ]
