#!/usr/bin/env bash
# server-restart.sh: the server dies (SIGKILL) mid-conversation and comes back on the same
# address, per transport. The client reads its lines from a FIFO, so the script decides when
# each one is sent:
#   "one"   -> answered; then the server is killed and started again on the same port or path;
#   "two"   -> a stream client is already gone: its connection died with the server, and a new
#              server cannot take it over. A UDP client never had a connection: "two" simply
#              reaches the new server, which takes it for a new peer. A unixgram client is
#              refused: its connect() tied it to the dead server's socket, not to the path;
#   "three" -> sent (UDP) while nobody listens: refused, and the client gives up.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

# say NAME LINE: hands LINE to client NAME (fd 4 is its FIFO); false when the client has quit.
say() { (echo "$2" >&4) 2>/dev/null; }
replied() { grep -qx "Received from server: $2" "$(out "$1")"; }
replied_or_quit() { replied "$1" "$2" || np_exited "${NP_PID[$1]}"; }
why_quit() { tidy "$(sed -n 's/^netpair: error: //p' "$(err "$1")")"; }

declare -A RC
for proto in tcp udp unix unixgram; do
  echo "== $proto"
  case $proto in
    tcp | udp) where=(--port 0) ;;
    *) where=(--path "$NP_TMP/$proto.sock") ;;
  esac
  np_server "first-$proto" "$NETPAIR" --proto $proto "${where[@]}" server
  [[ $proto == tcp || $proto == udp ]] && where=(--port "$NP_PORT")
  mkfifo "$NP_TMP/$proto.fifo"
  np_bg "client-$proto" "$NP_TMP/$proto.fifo" "$NETPAIR" --proto $proto "${where[@]}" client --timeout 1s
  exec 4>"$NP_TMP/$proto.fifo"

  say "client-$proto" one
  wait_for 10 replied "client-$proto" ONE || fail "$proto: no reply to 'one'"
  echo "  one:   answered by the first server"
  np_stop "first-$proto" KILL || true
  echo "  (first server killed)"
  if [[ $proto == tcp || $proto == unix ]]; then
    # The kernel closed the dead server's connections; the client sees the end of its stream.
    wait_for 10 np_exited "${NP_PID[client-$proto]}" || fail "$proto: the client did not notice"
    echo "  the client quit at once: $(why_quit "client-$proto")"
  fi
  np_server "second-$proto" "$NETPAIR" --proto $proto "${where[@]}" server
  echo "  (second server listening on $(tidy "$NP_ADDR"))"

  if ! say "client-$proto" two; then
    echo "  two:   not sent: the client had quit"
  elif ! wait_for 10 replied_or_quit "client-$proto" TWO; then
    fail "$proto: 'two' got neither a reply nor an error"
  elif replied "client-$proto" TWO; then
    echo "  two:   answered by the second server, which saw: $(grep '^Connection from' "$(out "second-$proto")")"
    np_stop "second-$proto" KILL || true
    echo "  (second server killed)"
    say "client-$proto" three || true
    wait_for 10 np_exited "${NP_PID[client-$proto]}" || fail "$proto: the client did not give up"
    echo "  three: $(why_quit "client-$proto")"
  else
    echo "  two:   $(why_quit "client-$proto")"
    echo "         (connect() tied the client to the first server's socket, not to its path)"
  fi
  # Still running after a reply to "two" only if something above went wrong.
  if [[ -n ${NP_PID[second-$proto]:-} ]]; then np_stop "second-$proto"; fi
  exec 4>&-
  RC[$proto]=0
  np_wait "client-$proto" 10 || RC[$proto]=$?
  echo "  client: exit ${RC[$proto]}, $(sed -n 's/^netpair: \(sent [^;]*\).*/\1/p' "$(err "client-$proto")")"
done

cat <<'EOF'

A stream is a connection between two sockets: when one end dies, the connection dies with it,
and a new server on the same address is a stranger. A UDP client only has the server's address:
whoever listens there next gets its datagrams. While nobody listens, the ICMP "port unreachable"
makes the next send fail as refused.

Checks:
EOF
for proto in tcp unix; do
  c=$(err "client-$proto")
  check "$proto: the client saw the connection end with the first server and quit (exit 1)" \
    [ "${RC[$proto]}" -eq 1 ]
  check "$proto: one message sent, one answered" [ "$(summary_field sent "$c")/$(summary_field received "$c")" == 1/1 ]
  check "$proto: the second server never heard from it" [ "$(count '^Connection from' "$(out "second-$proto")")" -eq 0 ]
done
c=$(err client-udp)
first=$(sed -n 's/^Connection from: //p' "$(out first-udp)")
check "udp: the second server answered 'two', taking the same client ($first) for a new one" \
  grep -qx "Connection from: $first" "$(out second-udp)"
check "udp: 'three', sent to nobody, was refused and the client quit (exit 1)" \
  [ "${RC[udp]}/$(count 'failed: connection refused' "$c")" == 1/1 ]
check "udp: sent 3, received 2, lost 1" \
  [ "$(summary_field sent "$c")/$(summary_field received "$c")/$(summary_field lost "$c")" == 3/2/1 ]
c=$(err client-unixgram)
check "unixgram: 'two' was refused although a server listens on the path again (exit 1)" \
  [ "${RC[unixgram]}/$(count 'failed: connection refused' "$c")" == 1/1 ]
check "unixgram: the second server never heard from it" [ "$(count '^Connection from' "$(out second-unixgram)")" -eq 0 ]
check "unixgram: sent 2, received 1, lost 1" \
  [ "$(summary_field sent "$c")/$(summary_field received "$c")/$(summary_field lost "$c")" == 2/1/1 ]
