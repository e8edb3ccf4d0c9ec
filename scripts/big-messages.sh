#!/usr/bin/env bash
# big-messages.sh: one message of growing size per transport, up to each one's limit and past it.
#
# - udp: one datagram carries at most 65,507 bytes over IPv4 (65,535 - 20 IP - 8 UDP header).
#   netpair refuses to send more; the kernel refuses too (shown with dd, one write of N bytes).
# - unixgram: no IP header, no 64 KiB cap: the limit is the socket's send buffer. Found here by
#   bisection, then what happens past it.
# - tcp, unix: a stream has no message size at all; a line is bounded only by netpair's
#   --max-message (1 MiB by default), which the server enforces by dropping the connection.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

MIB=1048576

# send_one NAME PROTO WHERE SIZE [CLIENT OPTIONS...]: sends one line of SIZE bytes with
# `netpair client`; sets RESULT to "intact" if the reply is those bytes uppercased, else why not.
send_one() {
  local name=$1 proto=$2 where=$3 size=$4 rc=0
  shift 4
  head -c "$size" /dev/zero | tr '\0' a >"$NP_TMP/line" && echo >>"$NP_TMP/line"
  # shellcheck disable=SC2086 # $where is two words: --port N or --path P
  np_run "$name" "$NP_TMP/line" 30 "$NETPAIR" --proto "$proto" $where client --timeout 2s "$@" || rc=$?
  local got
  got=$(sed -n 's/^Received from server: //p' "$(out "$name")" | tr -d '\n' | tr -d A | wc -c)
  local len
  len=$(sed -n 's/^Received from server: //p' "$(out "$name")" | tr -d '\n' | wc -c)
  if ((rc == 0 && got == 0 && len == size)); then
    RESULT=intact
  else
    RESULT="exit $rc: $(grep -v '^netpair: sent ' "$(err "$name")" | sed -n 1p)"
  fi
}
row() { printf '  %-9s %9s bytes: %s\n' "$1" "$2" "$(tidy "$3")"; }

echo "== udp"
np_server udp "$NETPAIR" --proto udp --port 0 server -q
udp_where="--port $NP_PORT"
declare -A result kernel stream
for size in 1000 65507 65508; do
  send_one "udp-$size" udp "$udp_where" "$size"
  result[$size]=$RESULT
  row udp "$size" "$RESULT"
done
# The kernel's own limit, without netpair: dd makes exactly one write() of bs bytes.
exec 3<>"/dev/udp/127.0.0.1/$NP_PORT"
for size in 65507 65508; do
  if dd if=/dev/zero bs="$size" count=1 2>"$NP_TMP/dd.err" >&3; then
    kernel[$size]="sent"
  else
    kernel[$size]=$(grep -o 'Message too long' "$NP_TMP/dd.err" || sed -n 1p "$NP_TMP/dd.err")
  fi
  row "udp (dd)" "$size" "write(): ${kernel[$size]}"
done
exec 3>&-
udp_65507=${result[65507]}
kernel_65507=${kernel[65507]} kernel_65508=${kernel[65508]}

echo "== unixgram (both ends allow 1 MiB, so only the kernel limits)"
np_server unixgram "$NETPAIR" --proto unixgram --path "$NP_TMP/gram.sock" --max-message $MIB server -q
gram() { send_one "gram-$1" unixgram "--path $NP_TMP/gram.sock" "$1" --max-message $MIB; }
gram 65508 && gram_65508=$RESULT
row unixgram 65508 "$gram_65508"
lo=65508 hi=$MIB
gram $hi && gram_mib=$RESULT
row unixgram $hi "$gram_mib"
# Bisect: lo always got through, hi never did.
if [[ $gram_65508 == intact && $gram_mib != intact ]]; then
  while ((hi - lo > 1)); do
    mid=$(((lo + hi) / 2))
    gram $mid
    if [[ $RESULT == intact ]]; then lo=$mid; else hi=$mid; fi
  done
fi
gram $lo && gram_largest=$RESULT
gram $((lo + 1)) && gram_past=$RESULT
row unixgram $lo "$gram_largest  <- the largest (net.core.wmem_default is $(cat /proc/sys/net/core/wmem_default 2>/dev/null || echo '?'))"
row unixgram $((lo + 1)) "$gram_past"

for proto in tcp unix; do
  echo "== $proto (server at the default --max-message, 1 MiB)"
  if [[ $proto == tcp ]]; then
    np_server $proto "$NETPAIR" --proto tcp --port 0 server
    where="--port $NP_PORT"
  else
    np_server $proto "$NETPAIR" --proto unix --path "$NP_TMP/stream.sock" server
    where="--path $NP_TMP/stream.sock"
  fi
  for size in 65508 $MIB $((MIB + 1)); do
    # The client allows 2 MiB, so the line past the server's limit is sent and the server decides.
    send_one "$proto-$size" "$proto" "$where" "$size" --max-message $((2 * MIB))
    stream[$proto-$size]=$RESULT
    row "$proto" "$size" "$RESULT"
  done
  np_stop $proto
  grep -E 'closing|too long' "$(out $proto)" "$(err $proto)" | sed 's/^[^:]*: */  server said: /'
done

echo
echo "Checks:"
check "udp: 65,507 bytes (the IPv4 limit) went through intact" [ "$udp_65507" == intact ]
check "udp: netpair refused 65,508 before sending" grep -q 'not sent: 65,508 bytes is over the limit' "$(err udp-65508)"
check "udp: the kernel sends 65,507 bytes in one datagram" [ "$kernel_65507" == sent ]
check "udp: the kernel refuses 65,508 (EMSGSIZE)" [ "$kernel_65508" == 'Message too long' ]
check "unixgram: past UDP's limit, 65,508 bytes went through intact" [ "$gram_65508" == intact ]
check "unixgram: the largest datagram ($lo bytes) went through intact" [ "$gram_largest" == intact ]
check "unixgram: one byte more is refused as too long" grep -q 'message too long' "$(err "gram-$((lo + 1))")"
for proto in tcp unix; do
  check "$proto: 65,508 bytes went through intact" [ "${stream[$proto-65508]}" == intact ]
  check "$proto: 1 MiB went through intact" [ "${stream[$proto-$MIB]}" == intact ]
  check "$proto: 1 MiB + 1 was refused by the server (connection dropped)" \
    grep -q "Disconnected: .* (message too long)" "$(out $proto)"
done
