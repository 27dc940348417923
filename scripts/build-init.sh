#!/usr/bin/env bash
# Builds the guest /init (the init/ crate) as static musl binaries for
# x86_64 and aarch64 and writes them to src/boot/guest/, where the host tool
# embeds them. The build is reproducible: the same rustc gives the same bytes
# in any checkout directory (source and cargo home paths are remapped, lld
# writes no build id, the profile strips symbols).
#
#   scripts/build-init.sh          rebuild and write the binaries + TOOLCHAIN
#   scripts/build-init.sh --check  rebuild in a temporary target directory
#                                  with the rustc named in TOOLCHAIN and
#                                  compare byte for byte with the committed
#                                  binaries; exit 1 on any difference
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
guest=$root/src/boot/guest
targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
declare -A out_name=([x86_64-unknown-linux-musl]=init-x86_64 [aarch64-unknown-linux-musl]=init-aarch64)

log() { printf 'build-init: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

check=false
case "${1:-}" in
    "") ;;
    --check) check=true ;;
    *) die "usage: scripts/build-init.sh [--check]" ;;
esac

cd "$root"
# Only the flags below may shape the binaries.
unset RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER
while IFS= read -r var; do unset "$var"; done < <(env | sed -n 's/^\(CARGO_PROFILE_[A-Z0-9_]*\)=.*/\1/p')

# rustc -V of the toolchain to build with: this checkout's default when
# writing, the recorded one when checking.
cargo=(cargo)
toolchain=()
rustc_version=$(rustc -V)
if $check; then
    [[ -f $guest/TOOLCHAIN ]] || die "no $guest/TOOLCHAIN: run scripts/build-init.sh first"
    want=$(<"$guest/TOOLCHAIN")
    if [[ $rustc_version != "$want" ]]; then
        release=$(awk '{print $2}' <<<"$want")
        log "the binaries were built with '$want', this machine's rustc is '$rustc_version'; installing $release with rustup"
        if command -v rustup >/dev/null &&
            { [[ $(rustc "+$release" -V 2>/dev/null) == "$want" ]] ||
                rustup toolchain install "$release" --profile minimal >&2; } &&
            rustup target add --toolchain "$release" "${targets[@]}" >&2 &&
            [[ $(rustc "+$release" -V) == "$want" ]]; then
            cargo=(cargo "+$release")
            toolchain=(--toolchain "$release")
            rustc_version=$want
        else
            die "cannot check: the binaries were built with '$want' but this machine has '$rustc_version' and rustup could not install $release; install it or rebuild with scripts/build-init.sh"
        fi
    fi
fi

installed=$(rustup target list --installed "${toolchain[@]}" 2>/dev/null || true)
for target in "${targets[@]}"; do
    grep -qx "$target" <<<"$installed" || die "missing Rust target $target: rustup target add ${targets[*]}"
done

cargo_home=${CARGO_HOME:-$HOME/.cargo}
# The later remap wins, so a cargo home inside the checkout maps to /cargo.
flags=(
    -Clinker=rust-lld
    "--remap-path-prefix=$root=/initramfs-stream"
    "--remap-path-prefix=$cargo_home=/cargo"
)
CARGO_ENCODED_RUSTFLAGS=$(IFS=$'\x1f'; printf '%s' "${flags[*]}")
export CARGO_ENCODED_RUSTFLAGS

if $check; then
    target_dir=$(mktemp -d)
    trap 'rm -rf "$target_dir"' EXIT
else
    target_dir=$root/target/guest-init
fi

for target in "${targets[@]}"; do
    log "building $target with $rustc_version"
    "${cargo[@]}" build --quiet --locked -p initramfs-stream-init --bin init \
        --profile init --target "$target" --target-dir "$target_dir"
done

status=0
for target in "${targets[@]}"; do
    built=$target_dir/$target/init/init
    committed=$guest/${out_name[$target]}
    if $check; then
        if cmp -s "$built" "$committed"; then
            log "${committed#"$root"/}: matches the source ($(stat -c %s "$built") bytes)"
        else
            log "${committed#"$root"/} does not match a rebuild of init/ with $rustc_version: run scripts/build-init.sh and commit src/boot/guest/"
            status=1
        fi
    else
        mkdir -p "$guest"
        cp "$built" "$committed.tmp"
        mv "$committed.tmp" "$committed"
        log "${committed#"$root"/}: $(stat -c %s "$committed") bytes"
    fi
done
$check || printf '%s\n' "$rustc_version" >"$guest/TOOLCHAIN"
exit "$status"
