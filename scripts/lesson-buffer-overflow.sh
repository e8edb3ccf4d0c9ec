#!/usr/bin/env bash
# lesson-buffer-overflow.sh [N] [SIZE]: a server that stops reading. Datagrams sent to it wait in its
# socket's receive buffer; once that is full, the kernel drops the rest and counts each drop. The
# client loses exactly those, and, when the server catches up and answers the rest at once, those
# its own receive buffer had no room for (the kernel counts them too): the others are answered,
# late. Over
# TCP nothing is lost: the receive buffer's window closes, the sender's kernel holds the bytes back,
# and all of them arrive when the server reads again.
#
# A standing lab (`netpair lab up`); the server in its namespace is stopped (SIGSTOP) while the
# client sends N (600) messages of SIZE (20,000) bytes, then continued (SIGCONT). (netpair's UDP
# server asks for a 16 MiB receive buffer, so it takes that many to fill it.)
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

n=${1:-600} size=${2:-20000}
np_need_namespaces
"$NETPAIR" lab up >"$NP_TMP/up" || fail "netpair lab up: exit $? (is a lab already up? netpair lab down)"
NP_NETNS+=(nplab-up-client nplab-up-router nplab-up-server)
for ((i = 1; i <= n; i++)); do printf 'message %04d %0*d\n' "$i" $((size - 13)) 0; done >"$NP_TMP/input"

# dropped NAME: the receive-buffer drops in NAME's closing summary.
dropped() { grep -E "^netpair: (sent|served) " "$(err "$1")" | sed -n "s/.*receive buffer dropped \([0-9,]*\).*/\1/p" | tr -d , | tail -1; }

for proto in udp tcp; do
  np_server "$proto-server" ip netns exec nplab-up-server "$NETPAIR" --proto $proto server --host 10.88.2.2
  kill -STOP "${NP_PID[$proto-server]}"
  mkfifo "$NP_TMP/$proto.fifo"
  np_bg "$proto-client" "$NP_TMP/$proto.fifo" \
    ip netns exec nplab-up-client "$NETPAIR" --proto $proto client --host 10.88.2.2 --timeout 2ms
  exec 3>"$NP_TMP/$proto.fifo"
  cat "$NP_TMP/input" >&3
  wait_for 60 grep -q "no reply to message $n " "$(err "$proto-client")" || fail "$proto: the client did not send all $n"
  kill -CONT "${NP_PID[$proto-server]}"
  # Until the server has read what its buffer held and the client has taken the replies that came.
  last=-1
  while :; do
    now=$(($(count '^Received from User: ' "$(out "$proto-server")") + $(count '^netpair: late reply' "$(err "$proto-client")")))
    ((now == last)) && break
    last=$now
    sleep 0.5
  done
  exec 3>&-
  np_wait "$proto-client" 10 || true
  np_stop "$proto-server" || true
done

udp_read=$(count '^Received from User: ' "$(out udp-server)")
udp_dropped=$(dropped udp-server)
udp_late=$(summary_field late "$(err udp-client)")
client_dropped=$(dropped udp-client)
tcp_read=$(count '^Received from User: ' "$(out tcp-server)")
tcp_late=$(summary_field late "$(err tcp-client)")
echo "$n messages of $size bytes to a stopped server, each given up on after 2 ms; then the server continues:"
echo "  udp: the server read $udp_read; its kernel dropped $udp_dropped (receive buffer full);" \
  "$udp_late replies came, late; the client's kernel dropped ${client_dropped:-0} replies (its buffer full)"
echo "  tcp: the server read $tcp_read; $tcp_late replies came, late"
echo
echo "Checks:"
check "udp: the receive buffer overflowed ($udp_dropped dropped)" [ "${udp_dropped:-0}" -gt 0 ]
check "udp: read + dropped = sent ($udp_read + $udp_dropped = $n)" [ $((udp_read + udp_dropped)) -eq "$n" ]
check "udp: the client lost exactly what the two kernels dropped ($n - $udp_late late = $udp_dropped + ${client_dropped:-0})" \
  [ $((n - udp_late)) -eq $((udp_dropped + ${client_dropped:-0})) ]
check "tcp: the server read every message ($tcp_read)" [ "$tcp_read" -eq "$n" ]
check "tcp: every reply came ($tcp_late late)" [ "$tcp_late" -eq "$n" ]
