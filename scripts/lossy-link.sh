#!/usr/bin/env bash
# lossy-link.sh [N]: N (200) messages over a link that drops 1 packet in 10, over TCP and UDP.
#
# Two network namespaces joined by a veth pair: the server in one (10.77.0.1), the client in the
# other (10.77.0.2). nftables in the server's namespace drops, at random, 1 in 10 packets to or
# from the server's ports, the TCP handshake's among them: a lost SYN is sent again after 1 s,
# well within the client's --connect-timeout (10 s). Named nft counters count every packet and drop.
# - TCP: the kernel resends what was dropped, so every message reaches the server and every reply
#   comes back, some after the client's 300ms --timeout: reported as late, never as another's reply.
# - UDP: nothing is resent. The client's summary accounts for every message (sent = received +
#   lost), and the nft counters say where each loss happened.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

n=${1:-200}
np_need_namespaces

srv=np-srv-$$ cli=np-cli-$$
np_netns "$srv" 2>"$NP_TMP/netns.err" || skip "cannot create a network namespace: $(cat "$NP_TMP/netns.err")"
np_netns "$cli"
ip link add "npv$$s" netns "$srv" type veth peer name "npv$$c" netns "$cli"
ip -n "$srv" addr add 10.77.0.1/24 dev "npv$$s"
ip -n "$cli" addr add 10.77.0.2/24 dev "npv$$c"
ip -n "$srv" link set "npv$$s" up
ip -n "$cli" link set "npv$$c" up
# (arrays, not functions: `ip netns exec` becomes netpair, so the pid we keep is netpair's)
in_srv=(ip netns exec "$srv")
in_cli=(ip netns exec "$cli")

np_server tcp-server "${in_srv[@]}" "$NETPAIR" --proto tcp --host 10.77.0.1 --port 0 server
tcp_port=$NP_PORT
np_server udp-server "${in_srv[@]}" "$NETPAIR" --proto udp --host 10.77.0.1 --port 0 server
udp_port=$NP_PORT

# rules PROTO DIR PORT: count all of PROTO's packets to (dport) or from (sport) PORT; drop 1 in 10.
rules() {
  echo "$1 $2 $3 counter name $1_$2_all"
  echo "$1 $2 $3 numgen random mod 10 == 0 counter name $1_$2_drop drop"
}
"${in_srv[@]}" nft -f - 2>"$NP_TMP/nft.err" <<EOF || skip "nftables does not work here: $(cat "$NP_TMP/nft.err")"
table inet netpair_lossy {
  counter tcp_dport_all { }
  counter tcp_dport_drop { }
  counter tcp_sport_all { }
  counter tcp_sport_drop { }
  counter udp_dport_all { }
  counter udp_dport_drop { }
  counter udp_sport_all { }
  counter udp_sport_drop { }
  chain input {
    type filter hook input priority 0; policy accept;
    $(rules tcp dport "$tcp_port")
    $(rules udp dport "$udp_port")
  }
  chain output {
    type filter hook output priority 0; policy accept;
    $(rules tcp sport "$tcp_port")
    $(rules udp sport "$udp_port")
  }
}
EOF
# packets NAME: a counter's packet count so far.
packets() { "${in_srv[@]}" nft list counter inet netpair_lossy "$1" | sed -n 's/.*packets \([0-9]*\).*/\1/p'; }

echo "Server in namespace $srv (10.77.0.1), client in $cli (10.77.0.2), one veth pair;"
echo "nftables drops 1 in 10 packets to or from tcp port $tcp_port and udp port $udp_port."
for ((i = 1; i <= n; i++)); do echo "msg $i"; done >"$NP_TMP/input"

for proto in tcp udp; do
  port=${proto}_port
  rc=0
  start=$(now_ms)
  np_run "$proto-client" "$NP_TMP/input" 120 \
    "${in_cli[@]}" "$NETPAIR" --proto $proto --host 10.77.0.1 --port "${!port}" client --timeout 300ms || rc=$?
  took=$(($(now_ms) - start))
  ((rc == 0 || rc == 3)) || { cat "$(err "$proto-client")" >&2; fail "$proto client exited $rc"; }
  echo
  echo "== $proto: $n messages, client --timeout 300ms (exit $rc after $((took / 1000)).$((took % 1000 / 100))s)"
  sed -n 's/^netpair: \(sent .*\)/  client: \1/p' "$(err "$proto-client")"
  echo "  server: read $(count '^from connected user: ' "$(out "$proto-server")") of $n messages"
  echo "  nft: dropped $(packets "${proto}_dport_drop") of $(packets "${proto}_dport_all") packets to the server," \
    "$(packets "${proto}_sport_drop") of $(packets "${proto}_sport_all") from it"
done
# Let the servers finish reading what TCP is still resending, then stop them.
wait_for 10 grep -q '^Disconnected' "$(out tcp-server)" || true

# seqs FILE WHAT: the message numbers in the client's "received" replies, "timeout" lines or "late" lines.
seqs() {
  case $2 in
    received) sed -n 's/^Received from server: MSG \([0-9]*\)$/\1/p' "$(out "$1")" ;;
    timeout) sed -n 's/^netpair: no reply to message \([0-9,]*\) within.*/\1/p' "$(err "$1")" | tr -d , ;;
    late) sed -n 's/^netpair: late reply to message \([0-9,]*\), after.*/\1/p' "$(err "$1")" | tr -d , ;;
  esac
}
# field PROTO NAME: a number from PROTO's client summary.
field() { summary_field "$2" "$(err "$1-client")"; }
# The message lines the server printed, as the input lines they came from.
server_lines() { sed -n 's/^from connected user: //p' "$(out "$1-server")"; }

tcp_sent=$(field tcp sent) tcp_received=$(field tcp received) tcp_lost=$(field tcp lost) tcp_late=$(field tcp late)
# A timed-out reply with no late line: the client had ended before it came (only ever the last).
unanswered=$(comm -23 <(seqs tcp-client timeout | sort) <(seqs tcp-client late | sort) | tr '\n' ' ')
udp_sent=$(field udp sent) udp_received=$(field udp received) udp_lost=$(field udp lost) udp_late=$(field udp late)
udp_seen=$(count '^from connected user: ' "$(out udp-server)")
requests_dropped=$(packets udp_dport_drop) replies_dropped=$(packets udp_sport_drop)

echo
echo "Checks:"
check "tcp: the link really dropped packets ($(packets tcp_dport_drop) + $(packets tcp_sport_drop))" \
  [ $(($(packets tcp_dport_drop) + $(packets tcp_sport_drop))) -gt 0 ]
check "tcp: every message reached the server once, in order" cmp -s <(server_lines tcp) "$NP_TMP/input"
still_coming=0
if [[ $unanswered == "$n " ]]; then
  still_coming=1
  echo "  note: tcp: the reply to the last message was still on its way when the client ended"
fi
check "tcp: every reply came back: $tcp_received in time + $tcp_late late$( ((still_coming)) && echo " + 1 on its way") = $n" \
  [ "$tcp_sent/$((tcp_received + tcp_late + still_coming))" == "$n/$n" ]
check "tcp: each timeout was one message, counted once ($tcp_lost)" \
  [ "$(seqs tcp-client timeout | sort -u | wc -l)" -eq "$tcp_lost" ]
check "tcp: the replies in time answered their own messages, in order" \
  cmp -s <(seqs tcp-client received) <(sort -n <(seqs tcp-client received) | uniq)
check "udp: the link really dropped packets ($requests_dropped + $replies_dropped)" \
  [ $((requests_dropped + replies_dropped)) -gt 0 ]
check "udp: sent $udp_sent = received $udp_received + lost $udp_lost" \
  [ "$udp_sent/$((udp_received + udp_lost))" == "$n/$n" ]
check "udp: the transcript agrees: $udp_received replies shown, $udp_lost timeouts" \
  [ "$(seqs udp-client received | wc -l)/$(seqs udp-client timeout | wc -l)" == "$udp_received/$udp_lost" ]
check "udp: every message is either answered or timed out, none both, none twice" \
  cmp -s <({ seqs udp-client received && seqs udp-client timeout; } | sort -n) <(seq "$n")
check "udp: the server read every message the link let through ($n - $requests_dropped = $udp_seen)" \
  [ $((n - requests_dropped)) -eq "$udp_seen" ]
check "udp: lost $udp_lost = $requests_dropped requests dropped + $replies_dropped replies dropped + $udp_late late" \
  [ "$udp_lost" -eq $((requests_dropped + replies_dropped + udp_late)) ]
