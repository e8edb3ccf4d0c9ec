# shellcheck shell=bash
# What the scripts in scripts/ share. Source it first: . "$(dirname "$0")/lib.sh"
#
# - finds netpair: $NETPAIR if set, else builds the installed kind (static.sh) into
#   target/HOST/release/netpair and uses that;
# - np_server / np_bg / np_wait / np_stop: run netpair in the background, each with its own
#   transcript files in a temp dir, and wait for it with a deadline;
# - wait_for: poll a condition until a deadline (never a bare sleep standing in for readiness);
# - a trap that, on any exit (Ctrl-C included), kills every process started here, deletes the
#   network namespaces made with np_netns, and removes the temp dir (NP_KEEP=1 keeps it, to look).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

NP_TMP=$(mktemp -d "${TMPDIR:-/tmp}/netpair-$(basename "$0" .sh).XXXXXX")
declare -A NP_PID=()
NP_NETNS=()

np_cleanup() {
  local pid ns i
  # CONT first: a stopped process (kill -STOP) acts on TERM only once it runs again.
  for pid in "${NP_PID[@]}"; do { kill -TERM "$pid" && kill -CONT "$pid"; } 2>/dev/null || true; done
  # Give them a moment to exit cleanly (servers remove their socket files), then insist.
  for ((i = 0; i < 40; i++)); do
    local alive=0
    for pid in "${NP_PID[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.05
  done
  for pid in "${NP_PID[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for ns in "${NP_NETNS[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  [[ -n ${NP_KEEP:-} ]] || rm -rf "$NP_TMP"
}
trap np_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${NETPAIR:-} ]]; then
  # The binary scripts/install.sh installs, static on glibc (static.sh), so the figures are the users'.
  . scripts/static.sh
  np_cargo_static build --release --locked -q
  NETPAIR=$PWD/target/$NP_HOST/release/netpair
fi
[[ -x $NETPAIR ]] || { echo "FAIL: netpair binary $NETPAIR is not executable" >&2; exit 1; }

# fail MESSAGE: say what did not hold, and exit 1.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# check DESCRIPTION TEST...: runs TEST (e.g. `[ "$a" -eq "$b" ]`); prints "ok: DESCRIPTION" or fails.
check() {
  local what=$1
  shift
  if "$@"; then echo "  ok: $what"; else fail "$what"; fi
}

# wait_for SECONDS COMMAND...: polls COMMAND until it succeeds; returns 1 after SECONDS.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    if ((SECONDS > deadline)); then return 1; fi
    sleep 0.02
  done
}

# out NAME / err NAME: the transcript files of a process started with np_bg.
out() { echo "$NP_TMP/$1.out"; }
err() { echo "$NP_TMP/$1.err"; }

# np_bg NAME INPUT COMMAND...: runs COMMAND in the background with stdin from INPUT and
# stdout/stderr into $(out NAME)/$(err NAME).
np_bg() {
  local name=$1 input=$2
  shift 2
  : >"$NP_TMP/$name.out"
  "$@" <"$input" >"$NP_TMP/$name.out" 2>"$NP_TMP/$name.err" &
  NP_PID[$name]=$!
}

# np_wait NAME SECONDS: waits for NAME to exit and returns its exit status. A process still
# running after SECONDS is killed and the script fails, showing what it printed.
np_wait() {
  local name=$1 pid=${NP_PID[$1]} rc=0
  # (stderr: quiet the shell's own "Killed" notice when we killed it on purpose)
  wait_for "$2" np_exited "$pid" 2>/dev/null || np_overdue "$name" "$2"
  wait "$pid" 2>/dev/null || rc=$?
  unset "NP_PID[$name]"
  return "$rc"
}
np_exited() { ! kill -0 "$1" 2>/dev/null; }
np_overdue() {
  kill -KILL "${NP_PID[$1]}" 2>/dev/null || true
  echo "--- $1 stdout:" >&2 && tail -5 "$(out "$1")" >&2
  echo "--- $1 stderr:" >&2 && tail -5 "$(err "$1")" >&2
  fail "$1 still running after $2s"
}

# np_run NAME INPUT SECONDS COMMAND...: runs COMMAND to the end (at most SECONDS) with stdin from
# INPUT and its output in $(out NAME)/$(err NAME); returns its exit status.
np_run() {
  local name=$1 input=$2 seconds=$3 rc=0
  shift 3
  # Under timeout(1), so `wait` returns the moment it ends (no polling) and never later than SECONDS.
  np_bg "$name" "$input" timeout --kill-after=2 "$seconds" "$@"
  wait "${NP_PID[$name]}" 2>/dev/null || rc=$?
  if ((rc == 124 || rc == 137)); then np_overdue "$name" "$seconds"; fi
  unset "NP_PID[$name]"
  return "$rc"
}

# np_server NAME COMMAND...: starts a netpair server (COMMAND ends in `server ...` options) and
# waits for its first line, `Listening on PROTO ADDRESS`. Sets NP_ADDR to the address it
# printed, and NP_PORT to its port for tcp and udp: start it with --port 0 and use those.
np_server() {
  local name=$1
  shift
  np_bg "$name" /dev/null "$@"
  if ! wait_for 10 grep -q '^Listening on ' "$(out "$name")"; then
    cat "$(err "$name")" >&2
    fail "$name: no 'Listening on' line within 10s"
  fi
  NP_ADDR=$(sed -n '1s/^Listening on [a-z]* //p' "$(out "$name")")
  # shellcheck disable=SC2034 # for the scripts
  NP_PORT=${NP_ADDR##*:}
}

# np_stop NAME [SIGNAL]: stops a background process (SIGTERM by default) and waits for it;
# returns its exit status.
np_stop() {
  kill "-${2:-TERM}" "${NP_PID[$1]}" 2>/dev/null || true
  np_wait "$1" 5
}

# skip WHY: says SKIP and why, and ends the script as a success (tests/scripts.rs fails it under CI).
skip() {
  echo "SKIP: $*"
  exit 0
}

# np_need_namespaces: skips the script unless it can build hosts of network namespaces and nftables.
np_need_namespaces() {
  [[ $(id -u) == 0 ]] || skip "needs root (network namespaces and nftables)"
  command -v ip >/dev/null || skip "needs ip (iproute2)"
  command -v nft >/dev/null || skip "needs nft (nftables)"
}

# np_netns NAME: creates a network namespace that the exit trap deletes.
np_netns() {
  ip netns add "$1" || return
  NP_NETNS+=("$1")
}

# now_ms: a clock in milliseconds, for measuring how long something took.
now_ms() { local t=${EPOCHREALTIME/[.,]/}; echo $((t / 1000)); }

# tidy TEXT: TEXT with this run's temp dir left out of the paths in it, for shorter lines.
tidy() { echo "${1//"$NP_TMP/"/}"; }

# count PATTERN FILE: how many lines of FILE match the (extended) regex PATTERN.
count() { grep -cE -- "$1" "$2" || true; }

# summary_field NAME FILE: a number from the client's summary line in FILE
# (`netpair: sent 3, received 3, lost 0, late 0; ...`, numbers grouped: `sent 1,000`), e.g.
# summary_field sent c.err.
summary_field() { sed -nE "/^netpair: sent /s/.*[:,] $1 ([0-9]+(,[0-9]{3})*).*/\\1/p" "$2" | tr -d , | tail -1; }
