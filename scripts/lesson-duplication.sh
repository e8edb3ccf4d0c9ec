#!/usr/bin/env bash
# lesson-duplication.sh [N]: a link that duplicates packets. UDP hands the application every copy
# (netpair counts them as duplicates, apart from the replies it waited for); TCP never does: its
# sequence numbers make a duplicated segment one the receiver already has, and it drops it.
#
# `netpair lab --dup 10%` makes the lab's router send 1 packet in 10 twice, each way.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

n=${1:-200}
np_need_namespaces
for ((i = 1; i <= n; i++)); do echo "message $i"; done >"$NP_TMP/input"

# duplicated NAME: what the router duplicated, both ways together, from the lab's report.
duplicated() { awk '/^  duplicated \(--dup\)/ { gsub(",", ""); print $(NF-1) + $NF }' "$(out "$1")"; }

for proto in udp tcp; do
  np_run "$proto" "$NP_TMP/input" 120 "$NETPAIR" lab --dup 10% client --proto $proto --timeout 1s ||
    { cat "$(err "$proto")" >&2; fail "the $proto client exited $?"; }
done
udp_dups=$(summary_field duplicates "$(err udp)")
tcp_dups=$(summary_field duplicates "$(err tcp)")
echo "The lab's router duplicates 1 packet in 10, each way; $n messages over each transport."
echo
echo "udp: the router duplicated $(duplicated udp) packets; the client was handed ${udp_dups:-0} duplicate replies"
echo "     (a duplicated request makes the server answer twice; a duplicated reply arrives twice)"
echo "tcp: the router duplicated $(duplicated tcp) packets; the client was handed ${tcp_dups:-0}"
echo
echo "Checks:"
check "udp: the router really duplicated ($(duplicated udp))" [ "$(duplicated udp)" -gt 0 ]
check "udp: duplicates reached the application (${udp_dups:-0})" [ "${udp_dups:-0}" -gt 0 ]
check "udp: every message still has its one reply ($(summary_field received "$(err udp)") of $n)" \
  [ "$(summary_field received "$(err udp)")" -eq "$n" ]
check "udp: the lab's sums hold (every copy accounted for)" bash -c "! grep -q '^  OFF' '$(out udp)'"
check "tcp: the router really duplicated ($(duplicated tcp))" [ "$(duplicated tcp)" -gt 0 ]
check "tcp: no duplicate reached the application" [ -z "$tcp_dups" ]
check "tcp: every message has its one reply" [ "$(summary_field received "$(err tcp)")" -eq "$n" ]
