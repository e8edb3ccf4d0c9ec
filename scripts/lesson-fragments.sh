#!/usr/bin/env bash
# lesson-fragments.sh: what an MTU does to datagrams and to a stream.
#
# The lab's link from the router to the server has an MTU of 1,280 bytes (--mtu 1280; the client's
# link keeps 1,500). A 65,507-byte UDP datagram, the largest there is, crosses it as IP fragments:
# the client's kernel cuts it into 45 of at most 1,500 bytes, and the server's reply leaves in 53 of
# at most 1,280. All of them must arrive for either to be put back together, so with 10% of packets
# lost each way it almost never arrives: 0.9^98, about 3 in 100,000. With fragments dropped
# altogether, the largest datagram that passes is the one that needs none: the MTU less the IP and
# UDP headers, 1,280 - 20 - 8 = 1,252 bytes over IPv4 and 1,280 - 40 - 8 = 1,232 over IPv6. TCP
# cuts the same bytes into segments that fit the path (its MSS) and resends what is lost.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
tries=${1:-20}

# line SIZE [COUNT]: COUNT (1) lines of SIZE bytes each.
line() { for ((i = 0; i < ${2:-1}; i++)); do head -c "$1" /dev/zero | tr '\0' x && echo; done; }
# replies NAME: the replies the client printed.
replies() { count '^Received from server: ' "$(out "$1")"; }
# fragments NAME WAY: the IP packets the router saw on WAY (2: to the server, 3: to the client).
seen() { awk -v col="$2" '/^  IP packets that came to the router/ { gsub(",", ""); print $(NF + col - 3) }' "$(out "$1")"; }

lab=("$NETPAIR" lab --mtu 1280)

line 65507 >"$NP_TMP/big"
np_run clean "$NP_TMP/big" 60 "${lab[@]}" client --proto udp --timeout 2s || fail "udp across a clean link: exit $?"
line 65507 "$tries" >"$NP_TMP/bigs"
rc=0
np_run lossy "$NP_TMP/bigs" 120 "${lab[@]}" --loss 10% client --proto udp --timeout 300ms || rc=$?
((rc == 0 || rc == 3)) || fail "udp across a lossy link: exit $rc"
{ line 1252 3 && line 1253 3; } >"$NP_TMP/v4"
{ line 1232 3 && line 1233 3; } >"$NP_TMP/v6"
rc=0
np_run v4 "$NP_TMP/v4" 60 "${lab[@]}" --drop-fragments client --proto udp --timeout 300ms --json || rc=$?
((rc == 3)) || fail "udp with fragments dropped: exit $rc, not 3 (some lost)"
rc=0
np_run v6 "$NP_TMP/v6" 60 "${lab[@]}" --drop-fragments --ipv6 client --proto udp --timeout 300ms --json || rc=$?
((rc == 3)) || fail "udp over IPv6 with fragments dropped: exit $rc, not 3 (some lost)"
np_run tcp "$NP_TMP/bigs" 120 "${lab[@]}" --loss 10% --drop-fragments client --proto tcp --timeout 20s ||
  fail "tcp across a lossy link that drops fragments: exit $?"

# answered NAME SIZE: how many messages of SIZE bytes got their reply (from the --json events).
answered() {
  python3 - "$(out "$1")" "$2" <<'PY'
import json, sys
sizes = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("event") == "reply":
        sizes[len(e["reply"])] = sizes.get(len(e["reply"]), 0) + 1
print(sizes.get(int(sys.argv[2]), 0))
PY
}

echo "MTU 1,280 between the lab's router and the server; the client's link has 1,500."
echo
echo "udp, 65,507 bytes, clean link: $(replies clean) of 1 came back;" \
  "the router saw $(seen clean 2) packets go to the server and $(seen clean 3) come back"
got=$(replies lossy)
expected=$(python3 -c "print(f'{$tries * 0.9 ** 98:.4f}')")
echo "udp, 65,507 bytes, 10% loss each way: $got of $tries came back"
echo "     (45 fragments going, 53 coming back: all 98 must survive, 0.9^98 = 0.003%: $expected expected of $tries)"
echo "udp, fragments dropped, IPv4: 1,252 bytes: $(answered v4 1252) of 3 came back; 1,253 bytes: $(answered v4 1253) of 3"
echo "udp, fragments dropped, IPv6: 1,232 bytes: $(answered v6 1232) of 3 came back; 1,233 bytes: $(answered v6 1233) of 3"
echo "tcp, 65,507 bytes x $tries, 10% loss and fragments dropped: $(replies tcp) of $tries came back;" \
  "the client's kernel resent $(sed -n 's/.*the client.s kernel resent \([0-9,]*\).*/\1/p' "$(out tcp)") segments"
echo
echo "Checks:"
check "udp: the largest datagram crosses a clean link as fragments" [ "$(replies clean)" -eq 1 ] && [ "$(seen clean 2)" -ge 45 ]
check "udp: with 10% loss it almost never arrives ($got of $tries)" [ "$got" -le 1 ]
check "udp, IPv4: 1,252 bytes (1,280 - 20 - 8) pass without fragments" [ "$(answered v4 1252)" -eq 3 ]
check "udp, IPv4: 1,253 bytes need fragments and never arrive" [ "$(answered v4 1253)" -eq 0 ]
check "udp, IPv6: 1,232 bytes (1,280 - 40 - 8) pass without fragments" [ "$(answered v6 1232)" -eq 3 ]
check "udp, IPv6: 1,233 bytes need fragments and never arrive" [ "$(answered v6 1233)" -eq 0 ]
check "tcp: every 65,507-byte message came back, through loss and no fragments" [ "$(replies tcp)" -eq "$tries" ]
