#!/usr/bin/env bash
# Type-checks the whole workspace (every target: libs, bins, tests, benches, examples) for
# x86_64-unknown-freebsd, with warnings denied, so the kqueue (mio) path and every
# cfg(target_os) branch compile and carry no code that only one side uses.
#
# How: Debian's rustc-web/cargo-web/rust-web-src (a second toolchain in /usr/bin, beside
# rustup's) with -Zbuild-std: std is checked from rust-web-src for the target, so no FreeBSD
# sysroot, linker or network download is needed. RUSTC_BOOTSTRAP=1 allows -Zbuild-std on
# that stable toolchain. A `check` only: nothing is linked or run (no FreeBSD host here).
# Own target dir (target/freebsd): another compiler and flags than the main build.
#
# Installs the three packages with apt-get when they are missing (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(rustc-web cargo-web rust-web-src)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} (apt) for the FreeBSD type-check"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "FreeBSD type-check: $(/usr/bin/rustc --version), target x86_64-unknown-freebsd, -D warnings"
start=$(date +%s)
if ! RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 RUSTFLAGS="-D warnings" \
    CARGO_TARGET_DIR=target/freebsd \
    /usr/bin/cargo check -Zbuild-std=std,panic_abort --target x86_64-unknown-freebsd \
    --workspace --all-targets --keep-going --quiet; then
    cat >&2 <<'EOF'
FAILED: the workspace does not type-check for FreeBSD (errors above). Likely cause: a
Linux-only item (io_uring, eventfd, netns, /proc) used outside cfg(target_os = "linux"), or an
item only the io_uring side uses, now dead code on FreeBSD. Fix: put it under the same cfg as
its users. Reproduce: ./scripts/check-freebsd.sh
EOF
    exit 1
fi
echo "FreeBSD type-check passed in $(($(date +%s) - start)) s"
