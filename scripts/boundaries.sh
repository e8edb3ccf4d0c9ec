#!/usr/bin/env bash
# boundaries.sh [N]: N (1,000) small messages written back to back, over TCP and over UDP.
#
# The writer is bash itself: each `printf ... >&3` on /dev/tcp or /dev/udp is one write(), one
# message of 6 bytes ("m0001;"). The server runs with --framing raw, the tutorial's rule: one
# recv() is one message, so its transcript shows exactly what each read returned.
# TCP is a byte stream: the bytes all arrive in order, but the reads merge (and may split) the
# writes. UDP keeps each datagram whole: one write, one read.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

n=${1:-1000}
((n > 0 && n <= 9999)) || fail "N must be 1..9999"
expected=$(for ((i = 1; i <= n; i++)); do printf 'm%04d;' "$i"; done)

# What the server read, one read per line.
reads() { sed -n 's/^from connected user: //p' "$(out "server-$1")"; }
all_bytes_read() { (($(reads "$1" | tr -d '\n' | wc -c) >= ${#expected})); }
all_reads_done() { (($(reads "$1" | wc -l) >= n)); }

for proto in tcp udp; do
  np_server "server-$proto" "$NETPAIR" --proto "$proto" --port 0 --framing raw server
  exec 3<>"/dev/$proto/127.0.0.1/$NP_PORT"
  for ((i = 1; i <= n; i++)); do printf 'm%04d;' "$i" >&3; done
  if [[ $proto == tcp ]]; then
    # Close only once everything is read: closing with the server's replies unread resets the connection.
    wait_for 10 all_bytes_read tcp || fail "tcp: the server did not get all ${#expected} bytes within 10s"
  else
    # A datagram can be dropped (receive buffer full): then the count never gets there.
    wait_for 3 all_reads_done udp || true
  fi
  exec 3>&-
  np_stop "server-$proto"
done

# Sort each read: exactly one message, several whole ones (merged), or cut mid-message (split).
tally() {
  reads "$1" | awk '
    /^m[0-9][0-9][0-9][0-9];$/ { one++; next }
    /^(m[0-9][0-9][0-9][0-9];)+$/ { merged++; next }
    { split_++ }
    END { printf "%d %d %d %d\n", NR, one, merged, split_ }'
}
read -r tcp_reads tcp_one tcp_merged tcp_split < <(tally tcp)
read -r udp_reads udp_one udp_merged udp_split < <(tally udp)

echo "$n writes of 6 bytes each, as the server read them (--framing raw: one read = one message):"
printf '  %-4s %6s reads: %5s exactly one message, %5s several merged, %5s cut mid-message\n' \
  tcp "$tcp_reads" "$tcp_one" "$tcp_merged" "$tcp_split" udp "$udp_reads" "$udp_one" "$udp_merged" "$udp_split"
echo "The first three TCP reads:"
reads tcp | cut -c1-72 | sed -n '1,3s/^/  | /p'
echo "The first three UDP reads:"
reads udp | sed -n '1,3s/^/  | /p'
echo

echo "Checks:"
check "tcp: every byte arrived, in order" [ "$(reads tcp | tr -d '\n')" == "$expected" ]
check "tcp: the reads did not keep the writes' boundaries ($tcp_reads reads for $n writes)" \
  [ "$tcp_one" -lt "$n" ]
check "udp: every read was exactly one whole datagram" [ "$udp_one" -eq "$udp_reads" ]
check "udp: no datagram arrived twice" [ "$(reads udp | sort | uniq -d | wc -l)" -eq 0 ]
if ((udp_reads == n)); then
  echo "  ok: udp: all $n datagrams arrived"
else
  # Not a failure of the claim: UDP promises whole datagrams, not delivery.
  echo "  note: udp: $((n - udp_reads)) of $n datagrams never arrived (the server's receive buffer" \
    "was full, and UDP does not retransmit)"
fi
