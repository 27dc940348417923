#!/usr/bin/env bash
# Builds a small example image offline: Debian's static busybox in an OCI
# layout made by umoci, with a command that greets and shows its args.
# Usage: scripts/example-image.sh DIR  -> prints the image reference.
set -euo pipefail
out=${1:?usage: example-image.sh DIR}
for tool in umoci busybox; do
  command -v "$tool" >/dev/null || {
    echo "example-image.sh: $tool is missing (apt-get install umoci busybox-static)" >&2
    exit 1
  }
done
mkdir -p "$out"
cd "$out"
rm -rf layout bundle
umoci init --layout layout
umoci new --image layout:latest
umoci unpack --image layout:latest bundle >/dev/null
root=bundle/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/root"
cp "$(command -v busybox)" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
umoci repack --image layout:latest bundle
umoci config --image layout:latest \
  --config.env GREETING=hello \
  --config.workingdir /root \
  --config.entrypoint /bin/sh --config.entrypoint -c \
  --config.entrypoint 'echo "$GREETING from $(pwd): $*"; uname -r' \
  --config.entrypoint example --config.cmd world >/dev/null
rm -rf bundle
echo "oci:$PWD/layout:latest"
