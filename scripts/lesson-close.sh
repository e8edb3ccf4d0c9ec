#!/usr/bin/env bash
# lesson-close.sh: three ways to end a TCP conversation, and what the other side sees of each.
# - half-close (shutdown(SHUT_WR)): the server reads end of file, and can still send the replies it
#   owes; the client reads them, then the server's own close.
# - close: the server reads end of file too, but the client's socket is gone: its kernel answers
#   the server's first reply with a reset (RST), and the replies still owed can go nowhere (a write
#   after the reset would fail with EPIPE; netpair's server sees the reset first and drops them).
# - reset (SO_LINGER 0, then close): the server is sent a reset at once: ECONNRESET.
#
# A standing lab (`netpair lab up`); the server in its namespace types its replies from a pipe
# (`server --reply stdin`), so the script decides when each reply is written.
# Needs root, ip (iproute2) and nft (nftables); without them it prints SKIP and exits 0.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

np_need_namespaces
"$NETPAIR" lab up >"$NP_TMP/up" || fail "netpair lab up: exit $? (is a lab already up? netpair lab down)"
NP_NETNS+=(nplab-up-client nplab-up-router nplab-up-server)
in_server=(ip netns exec nplab-up-server "$NETPAIR" --proto tcp server --host 10.88.2.2 --reply stdin --once --json)
in_client=(ip netns exec nplab-up-client "$NETPAIR" --proto tcp client --host 10.88.2.2 --timeout 3s)

# serve NAME: a server reading its replies from the pipe $NP_TMP/NAME.fifo, held open on fd 3.
serve() {
  exec 3>&-
  mkfifo "$NP_TMP/$1.fifo"
  np_bg "$1" "$NP_TMP/$1.fifo" "${in_server[@]}"
  exec 3>"$NP_TMP/$1.fifo"
  wait_for 10 grep -q '"event":"listening"' "$(out "$1")" || fail "$1: the server did not start"
}
# event NAME TEXT: waits for the server's JSON line with TEXT; prints it.
event() { wait_for 10 grep -q -- "$2" "$(out "$1")" || fail "$1: no $2 from the server"; grep -m1 -- "$2" "$(out "$1")"; }

echo "== half-close: the client sends one message, then shuts its sending side"
serve half
printf 'hello\n' >"$NP_TMP/one"
np_bg half-client "$NP_TMP/one" "${in_client[@]}" --window 2 --end half-close
event half '"event":"eof"' | sed 's/^/  server: /'
echo "one reply, written after the end of file" >&3
np_wait half-client 10 || fail "the half-closed client exited $?"
sed 's/^/  client: /' "$(out half-client)"
event half '"event":"disconnect"' | sed 's/^/  server: /'
np_wait half 10 || true

echo "== close: the client sends two messages, then closes at once"
serve close
printf 'one\ntwo\n' >"$NP_TMP/two"
rc=0
np_run close-client "$NP_TMP/two" 10 "${in_client[@]}" --window 2 --end close || rc=$?
event close '"event":"eof"' | sed 's/^/  server: /'
echo "first" >&3
event close '"reply":"first"' | sed 's/^/  server: /'
event close '"event":"unanswered"' | sed 's/^/  server: /'
close_client=$(grep -m1 '^netpair: sent' "$(err close-client)" || true)
echo "  client (exit $rc): $close_client"
np_wait close 10 || true

echo "== reset: the client sends one message, then resets the connection"
serve reset
rc_reset=0
np_run reset-client "$NP_TMP/one" 10 "${in_client[@]}" --end reset || rc_reset=$?
event reset '"event":"disconnect"' | sed 's/^/  server: /'
echo "  client (exit $rc_reset): $(grep -m1 '^netpair: sent' "$(err reset-client)" || true)"
exec 3>&-
np_wait reset 10 || true

echo
echo "Checks:"
check "half-close: the server read end of file with a reply still owed" grep -q '"event":"eof".*"owed":1' "$(out half)"
check "half-close: the client still received the reply it was owed" \
  grep -q '^Received from server: one reply, written after the end of file' "$(out half-client)"
check "half-close: then the connection ended cleanly (EOF)" grep -q '"event":"disconnect".*"cause":"EOF"' "$(out half)"
check "close: the server read end of file with two replies owed" grep -q '"event":"eof".*"owed":2' "$(out close)"
check "close: the first reply met a closed socket, and the one still owed was dropped" \
  grep -q '"event":"unanswered".*"messages":1' "$(out close)"
check "close: the client had gone without its replies (exit $rc)" [ "$rc" -eq 3 ]
check "reset: the server saw ECONNRESET" grep -q '"event":"disconnect".*"cause":"ECONNRESET"' "$(out reset)"
