#!/usr/bin/env bash
# no-server.sh: what a client sees when nobody answers, per transport.
#
# 1. Nobody listening: a free port, a socket file that does not exist, and a stale socket file
#    (its server was killed with SIGKILL and could not remove it). Every transport fails at once:
#    TCP's connect() is refused; UDP's connect() cannot fail (there is no connection), so the
#    datagram goes out and the ICMP "port unreachable" that comes back is reported as refused.
# 2. Somebody listening who never answers (the server is frozen with SIGSTOP): the kernel still
#    completes the TCP handshake and queues the datagrams, so every client waits for --timeout and
#    exits 3; when the server runs again it finds the messages waiting.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

TIMEOUT=1s
echo hello >"$NP_TMP/hello"

# try NAME PROTO WHERE...: runs a client that sends one line; keeps its exit status in RC[NAME]
# and how long it took in MS[NAME], and shows them with its first diagnostic.
declare -A RC MS
try() {
  local name=$1 proto=$2 start
  shift 2
  start=$(now_ms)
  RC[$name]=0
  np_run "$name" "$NP_TMP/hello" 30 "$NETPAIR" --proto "$proto" "$@" client --timeout $TIMEOUT || RC[$name]=$?
  MS[$name]=$(($(now_ms) - start))
  printf '  %-20s exit %s after %4d ms: %s\n' "$name" "${RC[$name]}" "${MS[$name]}" \
    "$(tidy "$(grep -v '^netpair: sent ' "$(err "$name")" | sed -n '1s/^netpair: //p')")"
}

echo "== 1. Nobody listening (client --timeout $TIMEOUT)"
# A port that was just free: bind port 0, note it, let it go.
for proto in tcp udp; do
  np_server "gone-$proto" "$NETPAIR" --proto $proto --port 0 server
  np_stop "gone-$proto"
  try "$proto-free-port" $proto --port "$NP_PORT"
done
for proto in unix unixgram; do
  try "$proto-no-file" $proto --path "$NP_TMP/nobody-$proto.sock"
  np_server "killed-$proto" "$NETPAIR" --proto $proto --path "$NP_TMP/stale-$proto.sock" server
  np_stop "killed-$proto" KILL || true
  [[ -S $NP_TMP/stale-$proto.sock ]] || fail "$proto: SIGKILL left no socket file behind"
  try "$proto-stale-file" $proto --path "$NP_TMP/stale-$proto.sock"
done

echo "== 2. A server that listens but never answers (SIGSTOP)"
for proto in tcp udp unix unixgram; do
  case $proto in
    tcp | udp) np_server "frozen-$proto" "$NETPAIR" --proto $proto --port 0 server -q && where=(--port "$NP_PORT") ;;
    *) np_server "frozen-$proto" "$NETPAIR" --proto $proto --path "$NP_TMP/frozen-$proto.sock" server -q &&
      where=(--path "$NP_ADDR") ;;
  esac
  kill -STOP "${NP_PID[frozen-$proto]}"
  try "$proto-frozen" $proto "${where[@]}"
  # Wake it: what the kernel held for it is still there.
  kill -CONT "${NP_PID[frozen-$proto]}"
  wait_for 10 grep -q '^from connected user: hello' "$(out "frozen-$proto")" || true
  echo "    woken up, the $proto server read: $(grep -c '^from connected user: hello' "$(out "frozen-$proto")") message(s)"
  np_stop "frozen-$proto"
done

cat <<'EOF'

With nobody there, every transport fails at once: TCP and Unix sockets at connect(), UDP on the
ICMP "port unreachable" its datagram brings back. With a server that is there but stuck, nothing
fails: the kernel accepts connections and queues datagrams for it, and only a timeout tells.

Checks:
EOF
check "tcp: refused at connect, nothing sent" grep -q 'cannot connect to tcp .*: connection refused' "$(err tcp-free-port)"
check "udp: the datagram went out and was refused (ICMP port unreachable)" \
  grep -q 'udp .* failed: connection refused' "$(err udp-free-port)"
check "udp: the summary counts it: sent 1, lost 1" \
  [ "$(summary_field sent "$(err udp-free-port)")/$(summary_field lost "$(err udp-free-port)")" == 1/1 ]
for proto in unix unixgram; do
  check "$proto: a missing socket file is 'no such file'" grep -q 'no such file or directory' "$(err "$proto-no-file")"
  check "$proto: a stale socket file is 'connection refused'" grep -q 'connection refused' "$(err "$proto-stale-file")"
done
for name in tcp-free-port udp-free-port unix-no-file unix-stale-file unixgram-no-file unixgram-stale-file; do
  check "$name: exit 1 (could not connect), well before the timeout (${MS[$name]} ms)" \
    [ "${RC[$name]}" -eq 1 -a "${MS[$name]}" -lt 1000 ]
done
for proto in tcp udp unix unixgram; do
  check "$proto, frozen server: no reply within $TIMEOUT, exit 3" \
    [ "${RC[$proto-frozen]}" -eq 3 -a "${MS[$proto-frozen]}" -ge 1000 ]
  check "$proto, frozen server: the message was waiting when it woke" grep -q '^from connected user: hello' "$(out "frozen-$proto")"
done
