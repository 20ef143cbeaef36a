#!/usr/bin/env bash
# Build the x86_64-qemu kernel and boot it under QEMU (TCG), as
# `cargo xtask qemu x86_64` does. Exits 0 when QEMU exits 33 (every check
# passed), 1 otherwise. Needs: rustup target x86_64-unknown-none,
# qemu-system-x86_64 (Debian: qemu-system-x86).
#
#   examples/x86_64-qemu/run.sh            # release build
#   PROFILE=debug examples/x86_64-qemu/run.sh
#   TIMEOUT=120 examples/x86_64-qemu/run.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

profile="${PROFILE:-release}"
target_dir="${CARGO_TARGET_DIR:-target}"
if [ "$profile" = release ]; then
    cargo build --release -p x86_64-qemu --target x86_64-unknown-none
else
    cargo build -p x86_64-qemu --target x86_64-unknown-none
fi

set +e
timeout "${TIMEOUT:-60}" qemu-system-x86_64 \
    -accel tcg \
    -smp 2 \
    -m 128M \
    -display none \
    -serial stdio \
    -no-reboot \
    -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
    -kernel "$target_dir/x86_64-unknown-none/$profile/x86_64-qemu"
status=$?
set -e

case "$status" in
    33) exit 0 ;;
    35) echo "x86_64-qemu: a check failed (QEMU exit status 35)" >&2 ;;
    37) echo "x86_64-qemu: the kernel crashed: panic or unexpected trap (QEMU exit status 37)" >&2 ;;
    124) echo "x86_64-qemu: timed out" >&2 ;;
    0) echo "x86_64-qemu: QEMU exited 0: a triple fault or a reset, not a verdict" >&2 ;;
    *) echo "x86_64-qemu: QEMU exited $status" >&2 ;;
esac
exit 1
