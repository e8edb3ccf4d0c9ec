#!/usr/bin/env bash
# netpair's round trips against the best tools on this machine, one after the other:
#  0. first a check of the C baselines: the one that writes netpair server's transcript writes the
#     same bytes for the same load (lines sorted; peers' ports, and whether a line names its peer,
#     aside);
#  1. ping-pong, 1 client, 64-byte messages: netpair bench against sockperf ping-pong (UDP, TCP),
#     interleaved ROUNDS times, medians, and netpair's p50 and p99 as a ratio to sockperf's;
#  2. throughput, 64 clients, window 16: netpair's server (in-process, and as a process of its own)
#     against a plain epoll server in C (compiled here), interleaved ROUNDS times, medians of round
#     trips/s and per server CPU-second, and netpair's per CPU-second as a ratio to C's; over TCP
#     also against the C server writing netpair's transcript, the same bytes, to a file;
#  3. 10,000 clients: lost replies and the p99;
#  4. `printf 'hi\nq\n' | netpair client` against `nc -N` for the same exchange, with hyperfine;
#  5. a thousand flows: 1,000 clients, window 1 (neper's `tcp_rr -F 1000`), TCP and UDP, against
#     the same C server as part 2, round trips per server CPU-second;
#  6. a connection per message (`bench --reconnect`, netperf's TCP_CRR) against the C server,
#     connections per server CPU-second;
#  7. part 1 with every core but one kept busy (spinners at nice 19, which stop by themselves), so
#     that no idle CPU halts and has to be woken: netpair against sockperf again; then pinned
#     (taskset), each tool's server and client on core 0 and the spinners on the others, the
#     software paths without the scheduler's choice of cores.
# A peer that is not installed (sockperf, cc, nc, hyperfine) is a SKIP for its part.
# Run it on a quiet machine: every figure here is shared with whatever else runs.
# Settings: ROUNDS (3), BUSY_ROUNDS (5, part 7's), SECONDS_EACH (3, per ping-pong run),
# THROUGHPUT_SECONDS (5, per run of parts 2, 5 and 6), NETPAIR, and PARTS ("0 1 2 3 4 5 6 7":
# which of them to run).
. "$(dirname "$0")/lib.sh"

ROUNDS=${ROUNDS:-3}
# Part 7's figures swing between two levels from run to run, pinned or not: more rounds for its medians.
BUSY_ROUNDS=${BUSY_ROUNDS:-5}
SECONDS_EACH=${SECONDS_EACH:-3}
THROUGHPUT_SECONDS=${THROUGHPUT_SECONDS:-5}
PARTS=${PARTS:-0 1 2 3 4 5 6 7}

# part N: whether PARTS asks for part N.
part() { [[ " $PARTS " == *" $1 "* ]]; }

command -v python3 >/dev/null || fail "python3 is needed to read the JSON figures"

# field JSON_FILE PROTO KEY: one figure of a `netpair bench --json` result.
field() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"][sys.argv[2]].get(sys.argv[3], "-"))' "$@"
}

# median NUMBER...: the middle value (the lower middle of an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# ratio A B: A / B to two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else print "-"}'; }

# free_port: a port free on 127.0.0.1 a moment ago (TCP and UDP).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# cpu_seconds PID: user + system CPU time a process has used so far.
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

# ping_pong NAME [PREFIX...]: part 1's runs (netpair bench and sockperf ping-pong, UDP and TCP,
# ROUNDS times, interleaved), each tool's commands under PREFIX (taskset, say), then one line per
# protocol with the medians and netpair's ratios to sockperf.
ping_pong() {
  local tag=$1 round proto json port flag n50 n99 s50 s99 line
  local -a pin=("${@:2}")
  local -A np50=() np99=() sp50=() sp99=()
  for ((round = 1; round <= ROUNDS; round++)); do
    for proto in udp tcp; do
      json=$NP_TMP/$tag-$proto-$round.json
      np_run "$tag-$proto" /dev/null $((SECONDS_EACH + 30)) \
        "${pin[@]}" "$NETPAIR" --proto "$proto" bench --duration "${SECONDS_EACH}s" --warmup 0.5s --json ||
        fail "netpair bench --proto $proto: $(tail -3 "$(err "$tag-$proto")")"
      cp "$(out "$tag-$proto")" "$json"
      np50[$proto]+=" $(field "$json" "$proto" rtt_p50_us)"
      np99[$proto]+=" $(field "$json" "$proto" rtt_p99_us)"
      command -v sockperf >/dev/null || continue
      port=$(free_port)
      flag=()
      [[ $proto == tcp ]] && flag=(--tcp)
      np_bg "sockperf-server" /dev/null "${pin[@]}" sockperf server "${flag[@]}" -i 127.0.0.1 -p "$port"
      wait_for 10 grep -q "to block on socket" "$(out sockperf-server)" || fail "sockperf server did not start"
      np_run "sockperf-$proto" /dev/null $((SECONDS_EACH + 30)) \
        "${pin[@]}" sockperf ping-pong "${flag[@]}" -i 127.0.0.1 -p "$port" -m 64 -t "$SECONDS_EACH" ||
        fail "sockperf ping-pong --proto $proto failed"
      np_stop "sockperf-server" >/dev/null 2>&1 || true
      # sockperf reports half the round trip: doubled here.
      sp50[$proto]+=" $(awk '/percentile 50.000 =/ {print 2 * $NF}' "$(out "sockperf-$proto")")"
      sp99[$proto]+=" $(awk '/percentile 99.000 =/ {print 2 * $NF}' "$(out "sockperf-$proto")")"
    done
  done
  for proto in udp tcp; do
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    n50=$(median ${np50[$proto]}) n99=$(median ${np99[$proto]})
    line="$proto: netpair p50 $n50, p99 $n99 (runs: p50${np50[$proto]})"
    if [[ -n ${sp50[$proto]:-} ]]; then
      # shellcheck disable=SC2086
      s50=$(median ${sp50[$proto]}) s99=$(median ${sp99[$proto]})
      line+="; sockperf p50 $s50, p99 $s99 (runs: p50${sp50[$proto]}); netpair/sockperf p50 $(ratio "$n50" "$s50"), p99 $(ratio "$n99" "$s99")"
    fi
    echo "$line"
  done
}

# build_c: compiles the baseline server into $NP_TMP/upper once (have_c=1), or says why not.
have_c=0
build_c() {
  ((have_c)) && return 0
  if ! command -v cc >/dev/null; then
    echo "SKIP plain epoll server baseline: no C compiler (cc)"
    return 1
  fi
  # The baseline: what a plain level-triggered epoll server does with the same load, replies
  # uppercased byte by byte (the bench's messages are ASCII lines, so a stream keeps its framing).
  # Over TCP it accepts, reads, writes and closes when its client does: with `--reconnect` (part 6)
  # that is one connection's whole life, as netperf's TCP_CRR server lives it. `upper tcp
  # transcript` also writes netpair server's transcript, the same bytes, once per turn: the like for
  # like of part 2's `netpair server`, whose transcript the plain server does not write.
  cat >"$NP_TMP/upper.c" <<'C'
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static void upper(char *b, ssize_t n) { for (ssize_t i = 0; i < n; i++) b[i] = (char)toupper((unsigned char)b[i]); }

/* With "transcript" (TCP): netpair server's transcript on stdout, byte for byte for the bench's
   messages (plain ASCII, so nothing to escape), held and written once per turn as netpair does. */
static char out[1 << 16];
static size_t outn;
static void flush_out(void) {
    for (size_t o = 0; o < outn;) { ssize_t w = write(1, out + o, outn - o); if (w <= 0) break; o += (size_t)w; }
    outn = 0;
}
static void put(const char *s, size_t n) {
    if (outn + n > sizeof out) flush_out();
    if (n > sizeof out) { ssize_t w = write(1, s, n); (void)w; return; }
    memcpy(out + outn, s, n);
    outn += n;
}
struct conn { char name[64]; size_t namelen; char part[4096]; size_t partn; };
static struct conn *conns[1 << 16];
static int nconns;
static void line(struct conn *c, const char *m, const char *u, size_t n) {
    for (int pass = 0; pass < 2; pass++) {
        if (nconns > 1) { put("[", 1); put(c->name, c->namelen); put("] ", 2); }
        if (pass == 0) { put("from connected user: ", 21); put(m, n); }
        else { put("Received from User: ", 20); put(u, n); }
        put("\n", 1);
    }
}
/* The lines of a read (b) and of its uppercase (u); a line cut by the read waits in c->part. */
static void lines(struct conn *c, const char *b, const char *u, size_t n) {
    size_t i = 0;
    if (c->partn > 0) {
        static char up[sizeof c->part];
        const char *nl = memchr(b, '\n', n);
        size_t take = nl ? (size_t)(nl - b) : n;
        if (c->partn + take > sizeof c->part) take = sizeof c->part - c->partn;
        memcpy(c->part + c->partn, b, take);
        c->partn += take;
        if (!nl) return;
        memcpy(up, c->part, c->partn);
        upper(up, (ssize_t)c->partn);
        line(c, c->part, up, c->partn);
        c->partn = 0;
        i = (size_t)(nl - b) + 1;
    }
    while (i < n) {
        const char *nl = memchr(b + i, '\n', n - i);
        if (!nl) { size_t rest = n - i; if (rest > sizeof c->part) rest = sizeof c->part; memcpy(c->part, b + i, rest); c->partn = rest; return; }
        line(c, b + i, u + i, (size_t)(nl - (b + i)));
        i = (size_t)(nl - b) + 1;
    }
}

int main(int argc, char **argv) {
    int udp = argc > 1 && strcmp(argv[1], "udp") == 0, one = 1, big = 8 << 20;
    int transcript = !udp && argc > 2 && strcmp(argv[2], "transcript") == 0;
    int ls = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (udp) setsockopt(ls, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    if (bind(ls, (void *)&a, sizeof a) < 0 || (!udp && listen(ls, 4096) < 0)) return perror("bind"), 1;
    getsockname(ls, (void *)&a, &al);
    printf("Listening on %s 127.0.0.1:%d\n", udp ? "udp" : "tcp", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    static char buf[65536];
    for (;;) {
        if (transcript) flush_out();
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (udp) {
                struct sockaddr_in from;
                socklen_t fl = sizeof from;
                ssize_t r;
                while ((r = recvfrom(fd, buf, sizeof buf, 0, (void *)&from, &fl)) >= 0) {
                    upper(buf, r);
                    sendto(fd, buf, r, 0, (void *)&from, fl);
                    fl = sizeof from;
                }
            } else if (fd == ls) {
                int c;
                struct sockaddr_in peer;
                socklen_t pl = sizeof peer;
                while ((c = accept4(ls, (void *)&peer, &pl, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                    if (transcript && c < (1 << 16)) {
                        struct conn *k = calloc(1, sizeof *k);
                        char ip[INET_ADDRSTRLEN];
                        inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
                        k->namelen = (size_t)snprintf(k->name, sizeof k->name, "%s:%d", ip, ntohs(peer.sin_port));
                        conns[c] = k;
                        nconns++;
                        put("Connection from: ", 17); put(k->name, k->namelen); put("\n", 1);
                    }
                    pl = sizeof peer;
                }
            } else {
                ssize_t r = read(fd, buf, sizeof buf);
                struct conn *k = transcript && fd < (1 << 16) ? conns[fd] : NULL;
                if (r <= 0) {
                    if (k) {
                        put("Disconnected: ", 14); put(k->name, k->namelen); put("\n", 1);
                        free(k); conns[fd] = NULL; nconns--;
                    }
                    close(fd);
                    continue;
                }
                if (k) {
                    static char ubuf[sizeof buf];
                    memcpy(ubuf, buf, (size_t)r);
                    upper(ubuf, r);
                    lines(k, buf, ubuf, (size_t)r);
                    if (write(fd, ubuf, r) != r) close(fd);
                    continue;
                }
                upper(buf, r);
                if (write(fd, buf, r) != r) close(fd); /* plain: no output buffer */
            }
        }
    }
}
C
  cc -O2 -o "$NP_TMP/upper" "$NP_TMP/upper.c" || fail "cannot compile the C baseline server"
  have_c=1
}

# against_server NAME PID PORT PROTO: loads a server process with the clients of the array `load`;
# adds its round trips/s (the JSON field `rate_key`) and round trips per CPU-second of that process
# (warm-up included in both counts) to rate[NAME] and per_cpu[NAME].
declare -A rate per_cpu
rate_key=round_trips_per_s
against_server() {
  local name=$1 pid=$2 port=$3 proto=$4 before after json=$NP_TMP/tp-$1.json
  before=$(cpu_seconds "$pid")
  np_run "tp-$name" /dev/null $((THROUGHPUT_SECONDS * 2 + 60)) "$NETPAIR" --proto "$proto" --port "$port" "${load[@]}" --connect ||
    fail "netpair bench --connect ($name): $(tail -3 "$(err "tp-$name")")"
  after=$(cpu_seconds "$pid")
  cp "$(out "tp-$name")" "$json"
  check_clean "$json" "$proto" "$name"
  rate[$name]+=" $(field "$json" "$proto" "$rate_key")"
  per_cpu[$name]+=" $(awk -v sent="$(field "$json" "$proto" sent)" -v cpu="$(awk -v a="$after" -v b="$before" 'BEGIN {print a - b}')" \
    'BEGIN {printf "%.0f", (cpu > 0 ? sent / cpu : 0)}')"
}

# in_process NAME PROTO: the same clients against bench's in-process server, whose thread's CPU
# time bench measures itself (the JSON field `cpu_key`); adds to rate[NAME] and per_cpu[NAME] as
# against_server does.
cpu_key=round_trips_per_server_cpu_s
in_process() {
  local name=$1 proto=$2 json=$NP_TMP/tp-in.json
  np_run "tp-in-$proto" /dev/null $((THROUGHPUT_SECONDS * 2 + 60)) "$NETPAIR" --proto "$proto" "${load[@]}" ||
    fail "netpair bench ($name): $(tail -3 "$(err "tp-in-$proto")")"
  cp "$(out "tp-in-$proto")" "$json"
  check_clean "$json" "$proto" "$name"
  rate[$name]+=" $(field "$json" "$proto" "$rate_key")"
  per_cpu[$name]+=" $(printf '%.0f' "$(field "$json" "$proto" "$cpu_key")")"
}

# check_clean JSON PROTO NAME: a run with lost or wrong replies is reported, not averaged in silently.
check_clean() {
  local lost wrong
  lost=$(field "$1" "$2" lost) wrong=$(field "$1" "$2" wrong)
  [[ $lost == 0 && $wrong == 0 ]] || echo "note: $3: lost $lost, wrong $wrong"
}

# one_round PROTO: one run of each server under `load`: netpair in-process, `netpair server` as a
# process with its transcript going to a file, and the C server when there is one (over TCP with
# transcript_too=1, also the C server writing the same transcript to a file).
C_TRANSCRIPT="tcp C server writing the same transcript to a file"
transcript_too=0
one_round() {
  local proto=$1
  in_process "$proto netpair in-process" "$proto"
  np_server "np-$proto" "$NETPAIR" --proto "$proto" --port 0 server
  against_server "$proto netpair server process (transcript to a file)" "${NP_PID[np-$proto]}" "$NP_PORT" "$proto"
  np_stop "np-$proto" >/dev/null 2>&1 || true
  if ((have_c)); then
    np_server "c-$proto" "$NP_TMP/upper" "$proto"
    against_server "$proto plain epoll server in C" "${NP_PID[c-$proto]}" "$NP_PORT" "$proto"
    np_stop "c-$proto" >/dev/null 2>&1 || true
    if ((transcript_too)) && [[ $proto == tcp ]]; then
      np_server "ct-$proto" "$NP_TMP/upper" "$proto" transcript
      against_server "$C_TRANSCRIPT" "${NP_PID[ct-$proto]}" "$NP_PORT" "$proto"
      np_stop "ct-$proto" >/dev/null 2>&1 || true
    fi
  fi
}

# report_rounds PROTO UNIT: for each server of one_round, its medians (UNIT: what was counted) and,
# against the C server, its per-CPU-second ratio of each round and their median; then clears them.
report_rounds() {
  local proto=$1 unit=$2 base="$1 plain epoll server in C" name r c line
  local ours="$proto netpair server process (transcript to a file)"
  local -a names=("$proto netpair in-process" "$ours" "$base")
  [[ $proto == tcp ]] && names+=("$C_TRANSCRIPT")
  for name in "${names[@]}"; do
    [[ -n ${per_cpu[$name]:-} ]] || continue
    # shellcheck disable=SC2086 # the lists are space-separated numbers
    r=$(median ${rate[$name]}) c=$(median ${per_cpu[$name]})
    line=$(printf '%s: %.0f %s/s, %.0f per server CPU-second (runs:%s)' "$name" "$r" "$unit" "$c" "${per_cpu[$name]}")
    if [[ $name != "$base" && -n ${per_cpu[$base]:-} ]]; then
      line+="; per CPU-second against C: $(round_ratios "$name" "$base")"
    fi
    echo "$line"
  done
  # Like for like: netpair's transcript against the C server writing the same one.
  if [[ $proto == tcp && -n ${per_cpu[$C_TRANSCRIPT]:-} && -n ${per_cpu[$ours]:-} ]]; then
    echo "$ours against the C server writing the same transcript, per CPU-second: $(round_ratios "$ours" "$C_TRANSCRIPT")"
  fi
  for name in "${names[@]}"; do
    unset "rate[$name]" "per_cpu[$name]"
  done
}

# round_ratios NAME BASE: NAME's per-CPU-second figure over BASE's, each round's (from runs a few
# seconds apart), then their median: steadier than a ratio of medians on a machine whose speed
# drifts. Prints "MEDIAN (rounds: R1 R2 ...)".
round_ratios() {
  local i
  local -a ours theirs each=()
  read -ra ours <<<"${per_cpu[$1]}"
  read -ra theirs <<<"${per_cpu[$2]}"
  for i in "${!ours[@]}"; do each+=("$(ratio "${ours[$i]}" "${theirs[$i]}")"); done
  echo "$(median "${each[@]}") (rounds: ${each[*]})"
}

echo "machine: $(nproc) cores, kernel $(uname -r); load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "netpair: $NETPAIR"

# --- 0. the C baselines' transcript ------------------------------------------------------------
if part 0; then
echo
echo "== 0. the C server with a transcript writes netpair server's bytes, for the same load"
if build_c; then
  for who in c netpair; do
    if [[ $who == c ]]; then
      np_server "check-$who" "$NP_TMP/upper" tcp transcript
    else
      np_server "check-$who" "$NETPAIR" --proto tcp --port 0 server
    fi
    # Lines of 3,000 bytes, 16 at a time: reads end inside lines, and their halves must join.
    np_run "check-load-$who" /dev/null 60 "$NETPAIR" --proto tcp --port "$NP_PORT" bench --connect --clients 3 \
      --window 16 --size 3000 --messages 300 --warmup 0 ||
      fail "netpair bench against the $who server: $(tail -3 "$(err "check-load-$who")")"
    # Both write a turn's lines before waiting again: the last turn's are out once all three left.
    wait_for 10 bash -c '(( $(grep -c "^Disconnected: " "$1") == 3 ))' _ "$(out "check-$who")" ||
      fail "the $who server did not see its 3 clients leave"
    np_stop "check-$who" >/dev/null 2>&1 || true
    sed -E 's/127\.0\.0\.1:[0-9]+/PEER/g' "$(out "check-$who")" >"$NP_TMP/check-$who.peers"
    # A line names its peer ("[PEER] ") while more than one is connected, so near the end whether
    # it does depends on when the others left, which differs from run to run: the lines are
    # compared without that name, once each server is seen to write it in this form.
    grep -q '^\[PEER\] ' "$NP_TMP/check-$who.peers" || fail "no line of the $who server's transcript names its peer"
    sed -E 's/^\[PEER\] //' "$NP_TMP/check-$who.peers" | sort >"$NP_TMP/check-$who.sorted"
  done
  cmp -s "$NP_TMP/check-c.sorted" "$NP_TMP/check-netpair.sorted" ||
    fail "the C server's transcript differs from netpair's: $(diff "$NP_TMP/check-c.sorted" "$NP_TMP/check-netpair.sorted" | head -5)"
  echo "ok: the same $(wc -l <"$NP_TMP/check-c.sorted") lines, $(wc -c <"$NP_TMP/check-c.sorted") bytes"
fi
fi

# --- 1. ping-pong ------------------------------------------------------------------------------
if part 1; then
echo
echo "== 1. ping-pong: 1 client, 64-byte messages; $ROUNDS rounds of ${SECONDS_EACH}s each, medians, round trips in us"
if ! command -v sockperf >/dev/null; then
  echo "SKIP sockperf comparison: sockperf is not installed (apt-get install sockperf)"
fi
ping_pong pp
fi

# --- 2. throughput ------------------------------------------------------------------------------
if part 2; then
echo
echo "== 2. throughput: 64 clients, window 16, 64-byte messages; $ROUNDS rounds of ${THROUGHPUT_SECONDS}s each, medians"
load=(bench --clients 64 --window 16 --duration "${THROUGHPUT_SECONDS}s" --warmup 0.5s --json)
build_c || true
transcript_too=1
for ((round = 1; round <= ROUNDS; round++)); do
  for proto in tcp udp; do one_round "$proto"; done
done
transcript_too=0
for proto in tcp udp; do report_rounds "$proto" "round trips"; done
fi

# --- 3. 10,000 clients -------------------------------------------------------------------------
if part 3; then
echo
echo "== 3. 10,000 clients, ping-pong, 20 messages each"
# TCP: in one process that is 20,000 sockets, over many machines' hard open-file limit, so the
# server runs as a process of its own here.
np_server np-10k "$NETPAIR" --port 0 server --max-clients 10100
json=$NP_TMP/10k-tcp.json
np_run 10k-tcp /dev/null 300 "$NETPAIR" --port "$NP_PORT" bench --connect --clients 10000 --messages 20 --warmup 0 --json ||
  echo "netpair bench --clients 10000 (tcp) exited $?: $(tail -3 "$(err 10k-tcp)")"
cp "$(out 10k-tcp)" "$json"
np_stop np-10k >/dev/null 2>&1 || true
json_udp=$NP_TMP/10k-udp.json
np_run 10k-udp /dev/null 300 "$NETPAIR" --proto udp bench --clients 10000 --messages 20 --warmup 0 --json ||
  echo "netpair bench --clients 10000 (udp) exited $?: $(tail -3 "$(err 10k-udp)")"
cp "$(out 10k-udp)" "$json_udp"
for pair in "tcp:$json:netpair server process" "udp:$json_udp:in-process server"; do
  IFS=: read -r proto file where <<<"$pair"
  echo "$proto ($where): $(field "$file" "$proto" round_trips) round trips, lost $(field "$file" "$proto" lost)," \
    "wrong $(field "$file" "$proto" wrong), p50 $(field "$file" "$proto" rtt_p50_us) us, p99 $(field "$file" "$proto" rtt_p99_us) us"
done
fi

# --- 4. one line from a script -----------------------------------------------------------------
if part 4; then
echo
printf '%s\n' "== 4. printf 'hi\\nq\\n' | netpair client, against nc -N for the same exchange"
if ! command -v hyperfine >/dev/null; then
  echo "SKIP: hyperfine is not installed (apt-get install hyperfine)"
elif ! nc -h 2>&1 | grep -q -- '-N'; then
  echo "SKIP: no nc with -N (apt-get install netcat-openbsd)"
else
  np_server np-one "$NETPAIR" --port 0 server
  # The same shell and pipe around both, so the difference is the programs'.
  printf '#!/bin/sh\nprintf '"'"'hi\\nq\\n'"'"' | %s --port %s client\n' "$NETPAIR" "$NP_PORT" >"$NP_TMP/one-netpair.sh"
  printf '#!/bin/sh\nprintf '"'"'hi\\nq\\n'"'"' | nc -N 127.0.0.1 %s\n' "$NP_PORT" >"$NP_TMP/one-nc.sh"
  hyperfine -N --warmup 10 --runs 100 --export-json "$NP_TMP/one.json" \
    --command-name "netpair client" "sh $NP_TMP/one-netpair.sh" \
    --command-name "nc -N" "sh $NP_TMP/one-nc.sh" >"$NP_TMP/one.txt" 2>&1 ||
    { cat "$NP_TMP/one.txt"; fail "hyperfine failed"; }
  np_stop np-one >/dev/null 2>&1 || true
  python3 - "$NP_TMP/one.json" <<'PY'
import json, sys
runs = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
np, nc = runs["netpair client"], runs["nc -N"]
for name, r in (("netpair client", np), ("nc -N", nc)):
    print(f"{name}: mean {r['mean'] * 1e3:.2f} ms ± {r['stddev'] * 1e3:.2f}, median {r['median'] * 1e3:.2f} ms")
print(f"netpair client / nc -N: mean {np['mean'] / nc['mean']:.2f}, median {np['median'] / nc['median']:.2f}")
PY
fi
fi

# --- 5. a thousand flows -----------------------------------------------------------------------
if part 5; then
echo
echo "== 5. a thousand flows: 1,000 clients, window 1, 64-byte messages; $ROUNDS rounds of ${THROUGHPUT_SECONDS}s each, medians"
# In-process, the clients and the server hold 2,000 sockets: the soft open-file limit goes up to the
# hard one (netpair raises its own; the C server inherits this shell's).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
files=$(ulimit -n)
if [[ $files != unlimited ]] && ((files < 2100)); then
  echo "SKIP: the open-file limit is $files, and 1,000 flows in one process need about 2,100"
else
  load=(bench --clients 1000 --window 1 --duration "${THROUGHPUT_SECONDS}s" --warmup 0.5s --json)
  build_c || true
  for ((round = 1; round <= ROUNDS; round++)); do
    for proto in tcp udp; do one_round "$proto"; done
  done
  for proto in tcp udp; do report_rounds "$proto" "round trips"; done
fi
fi

# --- 6. a connection per message ---------------------------------------------------------------
if part 6; then
echo
echo "== 6. a connection per message: bench --reconnect, 8 clients, TCP; $ROUNDS rounds of ${THROUGHPUT_SECONDS}s each, medians"
# Each message is a connection (connect, send, read the reply, close), so a server process's
# connections per CPU-second are its messages per CPU-second.
load=(bench --reconnect --clients 8 --duration "${THROUGHPUT_SECONDS}s" --warmup 0.5s --json)
rate_key=connections_per_s cpu_key=connections_per_server_cpu_s
build_c || true
for ((round = 1; round <= ROUNDS; round++)); do one_round tcp; done
report_rounds tcp connections
rate_key=round_trips_per_s cpu_key=round_trips_per_server_cpu_s
fi

# --- 7. ping-pong on a busy machine ------------------------------------------------------------
if part 7; then
echo
spin=$(($(nproc) - 1))
((spin >= 1)) || spin=1
echo "== 7. ping-pong as in part 1, with $spin of $(nproc) cores kept busy by spinners at nice 19; $BUSY_ROUNDS rounds of ${SECONDS_EACH}s each, medians, round trips in us"
if ! command -v sockperf >/dev/null; then
  echo "SKIP sockperf comparison: sockperf is not installed (apt-get install sockperf)"
fi
# An idle virtual CPU halts, and waking it costs more than the round trip itself: a spinner that
# yields to every other process keeps it awake. Each stops by itself after the part's longest time.
for ((i = 1; i <= spin; i++)); do
  np_bg "spin-$i" /dev/null timeout $((BUSY_ROUNDS * 2 * (2 * SECONDS_EACH + 40) + 30)) nice -n 19 sh -c 'while :; do :; done'
done
ROUNDS=$BUSY_ROUNDS ping_pong busy
for ((i = 1; i <= spin; i++)); do np_stop "spin-$i" >/dev/null 2>&1 || true; done
# Pinned, the scheduler's choice of cores is out of the figures: each tool's server and client
# share core 0 and a spinner has the others, so the ratio is of the software paths. (Runs still
# land near one of two levels, as unpinned, for both tools: hence BUSY_ROUNDS.)
echo
if ! command -v taskset >/dev/null || (($(nproc) < 2)); then
  echo "SKIP part 7 pinned: needs taskset (util-linux) and two cores"
else
  echo "== 7. the same pinned: each tool's server and client on core 0, a spinner at nice 19 on each other core"
  for ((i = 1; i < $(nproc); i++)); do
    np_bg "spin-pinned-$i" /dev/null taskset -c "$i" timeout $((BUSY_ROUNDS * 2 * (2 * SECONDS_EACH + 40) + 30)) nice -n 19 sh -c 'while :; do :; done'
  done
  ROUNDS=$BUSY_ROUNDS ping_pong busy-pinned taskset -c 0
  for ((i = 1; i < $(nproc); i++)); do np_stop "spin-pinned-$i" >/dev/null 2>&1 || true; done
fi
fi
