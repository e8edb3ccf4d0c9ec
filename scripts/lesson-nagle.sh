#!/usr/bin/env bash
# lesson-nagle.sh: Nagle's algorithm meets delayed ACKs. A client that writes each message in two
# parts and then reads the reply (write-write-read) sends the first part at once; with Nagle on
# (--nodelay off) the kernel holds the second until the first is acknowledged, and the server's
# kernel, with nothing to send back yet (the message is not whole), delays that acknowledgement by
# up to 40 ms. So every round trip stalls about 40 ms. With TCP_NODELAY (netpair's default) both
# parts leave at once.
#
# Runs `netpair bench` across the lab (a clean link), one client, one message in flight.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
: >"$NP_TMP/empty"

# p50 NAME: bench's median round trip, in ms, from its JSON.
p50() { python3 -c 'import json,sys; print(round(json.loads(open(sys.argv[1]).readline())["results"]["tcp"]["rtt_p50_us"] / 1000, 3))' "$(out "$1")"; }

for run in "off 2" "on 2" "off 1"; do
  read -r nodelay writes <<<"$run"
  name=nodelay-$nodelay-writes-$writes
  np_run "$name" "$NP_TMP/empty" 60 "$NETPAIR" lab bench --proto tcp --clients 1 --window 1 --duration 2s \
    --warmup 200ms --nodelay "$nodelay" --writes "$writes" --json || fail "$name: exit $?"
done
stalled=$(p50 nodelay-off-writes-2) prompt=$(p50 nodelay-on-writes-2) single=$(p50 nodelay-off-writes-1)

echo "One client, one message in flight, across the lab; median round trip:"
echo "  Nagle on  (--nodelay off), each message in two writes: $stalled ms"
echo "  Nagle off (--nodelay on),  each message in two writes: $prompt ms"
echo "  Nagle on  (--nodelay off), each message in one write:  $single ms"
echo
echo "Checks:"
check "write-write-read with Nagle on stalls on the delayed ACK (median $stalled ms, 20 ms or more)" \
  python3 -c "import sys; sys.exit(0 if $stalled >= 20 else 1)"
check "with TCP_NODELAY it does not (median $prompt ms, under 10 ms)" \
  python3 -c "import sys; sys.exit(0 if $prompt < 10 else 1)"
check "one write per message does not stall either, Nagle or not (median $single ms)" \
  python3 -c "import sys; sys.exit(0 if $single < 10 else 1)"
