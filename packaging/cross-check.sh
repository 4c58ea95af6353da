#!/usr/bin/env bash
# Type-checks the crate for Windows and macOS from Linux: the check that Unix-only code is
# behind cfg. Nothing is linked or run.
#
#   Windows (x86_64-pc-windows-gnu): needs `rustup target add x86_64-pc-windows-gnu` and
#     MinGW-w64 (Debian: gcc-mingw-w64-x86-64) for the libusb C code rusb compiles in.
#   macOS (aarch64-apple-darwin): needs `rustup target add aarch64-apple-darwin`. There is no
#     macOS SDK here, so a stand-in C compiler writes empty objects for libusb: `cargo check`
#     never links them. A real build happens on a Mac (packaging/macos/build-app.sh).
#
# Usage: packaging/cross-check.sh [windows|macos]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

check_windows() {
    cargo check --target x86_64-pc-windows-gnu --no-default-features --lib --bins
    cargo check --target x86_64-pc-windows-gnu --bins
}

check_macos() {
    local fake_cc
    fake_cc=$(mktemp)
    cat >"$fake_cc" <<'CC'
#!/bin/sh
# cc stand-in for `cargo check`: writes an empty object wherever one is asked for.
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        -o) out="$2"; shift ;;
        -Fo*) out="${1#-Fo}" ;;
    esac
    shift
done
[ -n "$out" ] && : >"$out"
exit 0
CC
    chmod +x "$fake_cc"
    export CC_aarch64_apple_darwin="$fake_cc" AR_aarch64_apple_darwin=ar
    cargo check --target aarch64-apple-darwin --no-default-features --lib --bins
    cargo check --target aarch64-apple-darwin --bins
    rm -f "$fake_cc"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(windows macos)
for target in "${targets[@]}"; do
    case "$target" in
        windows) check_windows ;;
        macos) check_macos ;;
        *) echo "unknown target '$target' (windows, macos)" >&2; exit 2 ;;
    esac
done
