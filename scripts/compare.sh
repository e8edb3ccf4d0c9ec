#!/usr/bin/env bash
# compare.sh [INPUT]: one conversation over tcp, udp, unix and unixgram, transcripts diffed.
#
# For each transport: start `netpair server`, run `netpair client < INPUT`, wait until the
# server says the client is gone. Then diff the client transcripts (they should be the same
# everywhere) and the server transcripts (where the transports show through).
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

input=${1:-$NP_TMP/input.txt}
if [[ $# -eq 0 ]]; then
  printf '%s\n' 'Hello, server' 'straße' '' 'two  spaces,	a tab' 'q' >"$input"
fi
[[ -r $input ]] || fail "cannot read $input"

protos=(tcp udp unix unixgram)
declare -A gone_after
for proto in "${protos[@]}"; do
  case $proto in
    tcp | udp) where=(--port 0) ;;
    *) where=(--path "$NP_TMP/$proto.sock") ;;
  esac
  # A short idle timeout, so the datagram servers say when they give up on their peer.
  np_server "server-$proto" "$NETPAIR" --proto "$proto" "${where[@]}" server --idle-timeout 1s
  [[ $proto == tcp || $proto == udp ]] && where=(--port "$NP_PORT")

  rc=0
  np_run "client-$proto" "$input" 30 "$NETPAIR" --proto "$proto" "${where[@]}" client || rc=$?
  ((rc == 0)) || { cat "$(err "client-$proto")" >&2; fail "$proto client exited $rc"; }
  quit=$(now_ms)
  wait_for 10 grep -q '^Disconnected: ' "$(out "server-$proto")" ||
    fail "$proto server never said the client was gone"
  gone_after[$proto]=$(($(now_ms) - quit))
  np_stop "server-$proto"

  # Name the address and the peer generically, so the diffs below show only real differences.
  peer=$(sed -n 's/^Connection from: //p' "$(out "server-$proto")" | head -1)
  while IFS= read -r line; do
    line=${line//"$NP_ADDR"/<address>}
    echo "${line//"$peer"/<peer>}"
  done <"$(out "server-$proto")" >"$NP_TMP/server-$proto.generic"
  echo "$proto: server listened on $(tidy "$NP_ADDR"), saw the client as $peer"
done

echo
echo "== Client transcripts (what the user sees), diffed against tcp:"
for proto in "${protos[@]:1}"; do
  if diff -u "$(out client-tcp)" "$(out "client-$proto")" >"$NP_TMP/diff"; then
    echo "tcp = $proto ($(wc -l <"$(out "client-$proto")") lines)"
  else
    cat "$NP_TMP/diff"
  fi
done
sed 's/^/  | /' "$(out client-tcp)"

echo
echo "== Server transcripts, address and peer written as <address> and <peer>, diffed against tcp:"
for proto in "${protos[@]:1}"; do
  echo "-- tcp / $proto:"
  diff -u --label tcp --label "$proto" "$NP_TMP/server-tcp.generic" "$NP_TMP/server-$proto.generic" |
    sed -n '/^[-+][^-+]/p' || true
done
echo
echo "== How long the server took to notice the client had quit:"
for proto in "${protos[@]}"; do
  echo "  $proto: '$(grep '^Disconnected: ' "$NP_TMP/server-$proto.generic")' ${gone_after[$proto]} ms after the client exited"
done

cat <<'EOF'

Why they differ:
- Every transport carried every message and reply intact and in order: on one machine nothing
  is lost, so the client transcripts are the same.
- Connection from: a TCP or Unix stream server learns of its client at accept(), before any
  message; a datagram server only when the first datagram arrives. TCP and UDP peers are an
  address and port; a Unix stream client has no name (peer#N); a unixgram client must bind a
  socket file of its own, or the server could not send the reply back.
- Disconnected: a stream client's close reaches the server at once (end of stream). A datagram
  client sends nothing when it quits, so the server only forgets it after --idle-timeout (1s here).

Checks:
EOF

messages() { grep -E '^(from connected user|Received from User): ' "$1" || true; }
for proto in "${protos[@]:1}"; do
  check "the $proto client transcript is byte for byte the tcp one" \
    cmp -s "$(out client-tcp)" "$(out "client-$proto")"
  check "the $proto server printed the same messages as the tcp one" \
    diff <(messages "$(out server-tcp)") <(messages "$(out "server-$proto")")
done
lines=$(awk '$0 == "q" { exit } { n++ } END { print n + 0 }' "$input")
check "every input line reached each server ($lines messages)" \
  [ "$(messages "$(out server-tcp)" | grep -c '^from connected user: ')" -eq "$lines" ]
for proto in tcp unix; do
  check "$proto: the server saw the close itself" grep -qx 'Disconnected: <peer>' "$NP_TMP/server-$proto.generic"
done
for proto in udp unixgram; do
  check "$proto: the server forgot the peer by idle timeout" \
    grep -qx 'Disconnected: <peer> (idle timeout)' "$NP_TMP/server-$proto.generic"
done
