# shellcheck shell=bash
# How the netpair that users run is built; sourced by install.sh (to install it) and lib.sh (to test it).
#
# On Linux with glibc it links the C library statically: it then starts in about 0.7 ms instead of
# 1.0 ms (no dynamic loader, fewer page faults), which a script that runs netpair once per line feels.
# The flag goes with an explicit `--target`: Cargo then gives RUSTFLAGS to the target's crates only,
# not to build scripts and proc-macros (clap's derive), which rustc loads as shared libraries and which
# therefore cannot be static. Needs glibc's static library: `libc6-dev` on Debian and Ubuntu (any Rust
# build needs it anyway), `glibc-static` on Fedora and RHEL.

NP_HOST=$(rustc -vV | sed -n 's/^host: //p')

# np_static: whether this host's binary is linked statically.
np_static() { [[ $NP_HOST == *-linux-gnu ]]; }

# np_cargo_static ARGS...: `cargo ARGS... --target HOST`, with the static flag where np_static.
np_cargo_static() {
  if np_static; then
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" cargo "$@" --target "$NP_HOST"
  else
    cargo "$@" --target "$NP_HOST"
  fi
}
