#!/usr/bin/env bash
# Measures the constants of the guest memory model (src/boot/check/memory.rs)
# for one architecture, with Debian's cloud kernel (scripts/fetch-kernel.sh)
# under QEMU TCG:
# - MemTotal and the rootfs tmpfs size (`stat -f /`) the guest reports at several
#   guest memory sizes, from which K and r are fitted;
# - the smallest guest memory (in MiB, by bisection) that boots a small
#   busybox tree and one with 200 MiB of random files (`-c none`); W is what
#   the small tree's boundary leaves of the tmpfs half.
# A boot counts only when the guest prints a marker it computes from /init
# and the kernel reported no failed unpack.
# Usage: benches/guest-memory-fit.sh amd64|arm64 [WORKDIR]
#   SIZES="96 128 256 512 1024" overrides the MemTotal sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: benches/guest-memory-fit.sh amd64|arm64 [WORKDIR]}
work=$(realpath "${2:-$(mktemp -d)}")
mkdir -p "$work"
source benches/guest-memory-common.sh
cat > "$work/init.sh" <<'INIT'
#!/bin/sh
/bin/busybox mkdir -p /proc
/bin/busybox mount -t proc proc /proc
/bin/busybox grep MemTotal /proc/meminfo
set -- $(/bin/busybox stat -f -c '%b %S' /)
echo "rootfs-kib $(($1 * $2 / 1024))"
echo "guest-memory-marker-$((6 * 7))"
/bin/busybox poweroff -f
INIT
chmod +x "$work/init.sh"

convert() { # OUT ARGS... -> the figure in MiB
    local out=$1; shift
    local json
    json=$("$bin" "oci:$layout:bb" --init "$work/init.sh" -o "$out" --json "$@")
    python3 -c 'import json,sys; print(json.loads(sys.argv[1])["guest_memory_bytes"] >> 20)' "$json"
}

boot() { # INITRD MIB -> the console in $work/boot.log; status 0 when it booted
    timeout 180 "${qemu[@]}" -accel tcg -m "$2" -nographic -no-reboot \
        -kernel "$kernel" -initrd "$1" -append "console=$console panic=-1" \
        </dev/null 2>&1 | tr -d '\r' > "$work/boot.log" || true
    # After a failed unpack the kernel still runs /init if it got that
    # far: the tree is cut short, which is not a boot.
    ! grep -q 'Initramfs unpacking failed' "$work/boot.log" &&
        grep -q '^guest-memory-marker-42$' "$work/boot.log"
}

why() { # the kernel's failure in $work/boot.log
    grep -m1 -o 'Initramfs unpacking failed.*\|Out of memory.*\|Kernel panic.*' "$work/boot.log" ||
        echo "stops before the console"
}

smallest() { # INITRD LOW HIGH (moved until LOW fails and HIGH boots) -> the smallest MiB that boots
    local lo=$2 hi=$3 mid
    while ! boot "$1" "$hi"; do
        echo "  $hi MiB: $(why)" >&2
        lo=$hi hi=$((hi * 2))
        ((hi <= 8192)) || return 1
    done
    while boot "$1" "$lo"; do
        hi=$lo lo=$((lo / 2))
        ((lo >= 16)) || return 1
    done
    while ((hi - lo > 1)); do
        mid=$(((lo + hi) / 2))
        if boot "$1" "$mid"; then hi=$mid; else lo=$mid; echo "  $mid MiB: $(why)" >&2; fi
    done
    echo "$hi"
}

small=$work/small-$arch.img
large=$work/large-$arch.img
small_figure=$(convert "$small" -c gzip)
large_figure=$(convert "$large" -c none --inject "$work/random:/data")
echo "$arch kernel $(cat "$(dirname "$kernel")/version")"
echo "| guest MiB | MemTotal KiB | kept KiB | rootfs KiB |"
echo "|---|---|---|---|"
for mib in ${SIZES:-96 128 256 512 1024}; do
    if boot "$small" "$mib"; then
        total=$(sed -n 's/^MemTotal: *\([0-9]*\) kB$/\1/p' "$work/boot.log")
        rootfs=$(sed -n 's/^rootfs-kib //p' "$work/boot.log")
        echo "| $mib | $total | $((mib * 1024 - total)) | $rootfs |"
    else
        echo "| $mib | $(why) | | |"
    fi
done
echo "small tree ($(stat -c %s "$small") bytes, gzip): figure $small_figure MiB, smallest boot" \
    "$(smallest "$small" $((small_figure / 2)) "$small_figure") MiB"
echo "200 MiB random tree ($(stat -c %s "$large") bytes, none): figure $large_figure MiB," \
    "smallest boot $(smallest "$large" $((large_figure * 7 / 10)) $((large_figure + 64))) MiB"
