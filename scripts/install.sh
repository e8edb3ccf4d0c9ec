#!/usr/bin/env bash
# Installs netpair with `cargo install`, statically linked on Linux with glibc (see static.sh for why
# and how). Options go to cargo install: `bash scripts/install.sh --root ~/.local` puts it in
# ~/.local/bin. Prints where it went.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/static.sh

root=${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --root) root=${args[i + 1]:-$root} ;;
    --root=*) root=${args[i]#--root=} ;;
  esac
done

if np_static; then
  np_cargo_static install --locked --path . "$@"
else
  cargo install --locked --path . "$@"
fi

bin=$root/bin/netpair
"$bin" --version >/dev/null || { echo "FAIL: $bin does not run" >&2; exit 1; }
if np_static; then
  ldd "$bin" 2>&1 | grep -qE 'not a dynamic executable|statically linked' ||
    { echo "FAIL: $bin is not statically linked" >&2; exit 1; }
  echo "installed $bin (statically linked)"
else
  echo "installed $bin"
fi
