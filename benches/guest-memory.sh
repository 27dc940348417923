#!/usr/bin/env bash
# The guest memory figure against real boots: for a few images, converts
# with --json, boots the archive under QEMU (TCG, Debian's cloud kernel from
# scripts/fetch-kernel.sh) at the figure and at 70 % of it, and prints one
# markdown row per image: archive size, figure, whether each boot unpacked
# the whole archive and reached /init (a marker the guest computes) and,
# when not, the kernel's last word.
# Usage: benches/guest-memory.sh [--arch arm64] [WORKDIR]   (needs umoci,
# busybox-static, qemu-system-x86_64 or qemu-system-aarch64, Debian's
# python3 for the many-files case). With --arch arm64 the image holds
# Debian's arm64 busybox and boots on the arm64 kernel (`-M virt`).
set -euo pipefail
cd "$(dirname "$0")/.."
arch=amd64
if [[ ${1:-} == --arch ]]; then
    arch=${2:?--arch amd64|arm64}
    shift 2
fi
work=$(realpath "${1:-$(mktemp -d)}")
mkdir -p "$work"
source benches/guest-memory-common.sh
cat > "$work/init.sh" <<'INIT'
#!/bin/sh
echo "guest-memory-marker-$((6 * 7))"
/bin/busybox poweroff -f
INIT
chmod +x "$work/init.sh"
# Debian's python3 standard library: thousands of small files.
python=$(/usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')

boots() { # INITRD MIB -> "boots" or the kernel's failure
    local log=$work/boot-$2.log
    timeout 120 "${qemu[@]}" -accel tcg -m "$2" -nographic -no-reboot \
        -kernel "$kernel" -initrd "$1" -append "console=$console panic=-1" \
        </dev/null 2>&1 | tr -d '\r' > "$log" || true
    # After a failed unpack the kernel still runs /init if it got that
    # far: the tree is cut short, which is not a boot.
    if grep -q 'Initramfs unpacking failed' "$log"; then
        echo "unpacking fails"
    elif grep -q '^guest-memory-marker-42$' "$log"; then
        echo "boots"
    elif grep -q 'Out of memory' "$log"; then
        echo "out of memory"
    elif grep -q 'Kernel panic' "$log"; then
        echo "panics"
    else
        echo "stops before the console"
    fi
}

row() { # NAME ARGS...
    local name=$1; shift
    local out=$work/$name.img
    local json figure mib low
    json=$("$bin" "oci:$layout:bb" --init "$work/init.sh" -o "$out" --json "$@")
    figure=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["guest_memory_bytes"])' "$json")
    mib=$((figure >> 20))
    low=$((mib * 7 / 10))
    printf '| %s | %s | %s | %d MiB | %s | %s |\n' "$arch" "$name" "$(stat -c %s "$out")" "$mib" \
        "$(boots "$out" "$mib")" "$(boots "$out" "$low") at $low MiB"
}

echo "| arch | image | archive bytes | guest_memory_bytes | at the figure | at 70 % |"
echo "|---|---|---|---|---|---|"
row busybox -c gzip
row "busybox + python stdlib (gzip)" -c gzip --inject "$python:/usr/lib/python3"
row "busybox + python stdlib (none)" -c none --inject "$python:/usr/lib/python3"
row "busybox + 200 MiB random (none)" -c none --inject "$work/random:/data"
