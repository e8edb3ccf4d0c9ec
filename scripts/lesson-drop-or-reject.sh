#!/usr/bin/env bash
# lesson-drop-or-reject.sh: a firewall that drops versus one that rejects. Dropped, a TCP connect
# hears nothing and waits out its connect timeout (the kernel resends the SYN after 1 s, 2 s...),
# and a UDP message simply gets no reply. Rejected, the TCP connect is answered with a reset and the
# UDP message with an ICMP "port unreachable", which a connected UDP socket reports as "connection
# refused": both fail at once.
#
# `netpair lab --firewall drop|reject` puts the firewall on the lab's router, in front of port 5001.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
echo "hello" >"$NP_TMP/input"

# try NAME FIREWALL PROTO: one message through the firewall; sets took (ms) and rc.
try() {
  local start
  start=$(now_ms)
  rc=0
  np_run "$1" "$NP_TMP/input" 60 "$NETPAIR" lab --firewall "$2" client --proto "$3" \
    --connect-timeout 3s --timeout 3s || rc=$?
  took=$(($(now_ms) - start))
  printf '  %-6s %-4s exit %s after %5s ms: %s\n' "$2" "$3" "$rc" "$took" \
    "$(grep -m1 -E 'error|no reply' "$(err "$1")" | sed 's/^netpair: //')"
}

echo "One message through a firewall in front of the server's port; connect timeout and reply timeout 3 s:"
try tcp-drop drop tcp
tcp_drop=$took tcp_drop_rc=$rc
try tcp-reject reject tcp
tcp_reject=$took tcp_reject_rc=$rc
try udp-drop drop udp
udp_drop=$took udp_drop_rc=$rc
try udp-reject reject udp
udp_reject=$took udp_reject_rc=$rc

echo
echo "Checks:"
# (Each run also builds and removes the lab, which takes a few hundred ms.)
check "tcp, dropped: the connect waited out its 3 s and failed (exit $tcp_drop_rc)" \
  [ "$tcp_drop_rc" -eq 1 ] && [ "$tcp_drop" -ge 3000 ] && grep -q 'timed out' "$(err tcp-drop)"
check "tcp, rejected: refused at once, in $tcp_reject ms (exit $tcp_reject_rc)" \
  [ "$tcp_reject_rc" -eq 1 ] && [ "$tcp_reject" -lt 3000 ] && grep -q 'refused' "$(err tcp-reject)"
check "udp, dropped: no reply, after the 3 s reply timeout (exit $udp_drop_rc)" \
  [ "$udp_drop_rc" -eq 3 ] && [ "$udp_drop" -ge 3000 ] && grep -q 'no reply to message 1' "$(err udp-drop)"
check "udp, rejected: the ICMP error came back at once, in $udp_reject ms (exit $udp_reject_rc)" \
  [ "$udp_reject_rc" -ne 0 ] && [ "$udp_reject" -lt 3000 ] && grep -q 'refused' "$(err udp-reject)"
check "the router's firewall counted what it stopped" grep -q 'stopped by the firewall' "$(out udp-reject)"
