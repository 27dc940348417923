#!/usr/bin/env bash
# The project's test entry point: installs the tools the integration tests
# drive (umoci, skopeo, busybox, cpio, compressors, qemu for boot tests),
# fetches a kernel when the boot-test helper exists, then runs cargo test.
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
)
missing=()
for cmd in "${!needs[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${needs[$cmd]}")
done
# busybox must be the static build: it is copied into test images.
if command -v busybox >/dev/null 2>&1 && ! dpkg -s busybox-static >/dev/null 2>&1; then
    missing+=(busybox-static)
fi
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
fi

locked=(--locked)
[[ -f Cargo.lock ]] || locked=()
# Arguments replace --all-targets, e.g. `scripts/test.sh --test differential`.
status=0
if (($#)); then
    cargo test --no-fail-fast "${locked[@]}" "$@" || status=$?
else
    cargo test --all-targets --no-fail-fast "${locked[@]}" || status=$?
fi
exit "$status"
