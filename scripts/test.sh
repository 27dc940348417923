#!/usr/bin/env bash
# The project's test entry point: installs the tools the integration tests
# drive (umoci, skopeo, busybox, cpio, compressors, qemu for boot tests,
# dockerd and podman, which tests/integration/engines.rs starts privately),
# fetches the kernels when the boot-test helper exists (and an arm64 busybox for the
# boot-check tests), checks that the committed guest /init binaries match
# init/, then runs cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package
declare -A needs=(
    [docker-registry]=docker-registry
    [htpasswd]=apache2-utils
    [skopeo]=skopeo
    [umoci]=umoci
    [busybox]=busybox-static
    [qemu-system-x86_64]=qemu-system-x86
    [bsdtar]=libarchive-tools
    [cpio]=cpio
    [pigz]=pigz
    [zstd]=zstd
    [pzstd]=zstd
    [xz]=xz-utils
    [lz4]=lz4
    [python3]=python3
    [script]=bsdutils
    [mknod]=coreutils
    [gzip]=gzip
    [tar]=tar
    [openssl]=openssl
    [cc]=gcc
    [readelf]=binutils
    [ldd]=libc-bin
    [musl-gcc]=musl-tools
    [dockerd]=docker.io
    [docker]=docker.io
    [podman]=podman
    [/usr/bin/time]=time
    [mkfifo]=coreutils
    [setpriv]=util-linux
)
missing=()
for cmd in "${!needs[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
# busybox must be the static build: it is copied into test images.
if command -v busybox >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
    missing+=(busybox-static)
fi
# The boot-check tests compile a small program and library.
[[ -f /usr/include/stdio.h ]] || missing+=(libc6-dev)
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [[ $(id -u) -eq 0 ]]; then
        echo "test.sh: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends \
            docker-registry apache2-utils skopeo umoci busybox-static qemu-system-x86 \
            libarchive-tools cpio pigz zstd xz-utils lz4 python3 "${missing[@]}" >&2
    else
        echo "test.sh: missing packages: ${missing[*]}" >&2
        echo "test.sh: run as root or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
fi

if [[ -x scripts/fetch-kernel.sh ]]; then
    scripts/fetch-kernel.sh >&2
    scripts/fetch-kernel.sh arm64 >&2
fi

# The static inits and the boot tests' probe program are built for these.
musl_targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
if ! command -v rustup >/dev/null 2>&1; then
    echo "test.sh: rustup is needed for the musl targets (static /init check, boot-test probe)" >&2
    exit 1
fi
installed=$(rustup target list --installed)
for t in "${musl_targets[@]}"; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t" >&2
done

status=0
# The guest /init is committed prebuilt: it must be what init/ builds to.
if ! (($#)); then
    scripts/build-init.sh --check || status=$?
fi
# An arm64 ELF (Debian's static busybox) for the boot-check tests.
if [[ -x scripts/fetch-arm64-busybox.sh ]]; then
    scripts/fetch-arm64-busybox.sh >/dev/null
fi

locked=(--locked)
[[ -f Cargo.lock ]] || locked=()
# The library builds without the command line's crates.
cargo build --lib --no-default-features "${locked[@]}" >&2

# Arguments replace --all-targets, e.g.
# `scripts/test.sh --test integration differential::`.
if (($#)); then
    cargo test --no-fail-fast "${locked[@]}" "$@" || status=$?
else
    cargo test --all-targets --no-fail-fast "${locked[@]}" || status=$?
    cargo test -p initramfs-stream-init --no-fail-fast "${locked[@]}" || status=$?
    # --all-targets leaves out the examples in the docs; they run here.
    cargo test --doc --no-fail-fast "${locked[@]}" || status=$?
    # The documentation builds without a warning (no broken or private links).
    RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --lib "${locked[@]}" >&2 || status=$?
    # The crate builds from its packaged files alone.
    # Its own target dir: the check shares fingerprints with the workspace
    # build and would leave them pointing at the packaged copy.
    cargo package --allow-dirty --target-dir target/package-check "${locked[@]}" >&2 || status=$?
fi
exit "$status"
