#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/.

Small, hand-made inputs that reach the interesting parts of each target
quickly: every tar entry type, whiteouts, links and escapes for the layer
reader; records near the format limits for the newc writer; real-shaped
OCI and Docker documents; references as users type them. Needs the
`zstd` command for the zstd layer. Run from anywhere: python3 fuzz/make_seeds.py
"""

import gzip
import io
import json
import os
import struct
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, type, extra) with extra = data, link target or
    (major, minor); returns the tar without tarfile's 10 KiB record padding."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, kind, extra, *pax in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1700000000
            ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            ti.type = kind
            data = None
            if kind == tarfile.REGTYPE:
                data = extra
                ti.size = len(data)
            elif kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                ti.linkname = extra
            elif kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
                ti.devmajor, ti.devminor = extra
            if pax:
                ti.pax_headers = pax[0]
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue().rstrip(b"\0")
    end = (len(raw) + 511) // 512 * 512
    return raw + b"\0" * (end - len(raw) + 1024)


F, D, S, L = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE


def layers():
    basic = tar([
        ("etc", D, None),
        ("etc/passwd", F, b"root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", F, b"root:x:0:\n"),
        ("bin", D, None),
        ("bin/busybox", F, b"\x7fELF" + b"\0" * 60),
        ("bin/sh", L, "bin/busybox"),
        ("bin/ash", L, "bin/sh"),
        ("usr/bin/env", S, "/bin/busybox"),
        ("lib", S, "usr/lib"),
        ("lib/libc.so", F, b"through a symlinked parent"),
        ("../../escape", F, b"clamped at the root"),
        ("./a//b/./c", F, b"messy path"),
        ("old", D, None),
        ("old/child", F, b"x"),
        (".wh.old", F, b""),
        ("opq", D, None),
        ("opq/.wh..wh..opq", F, b""),
        ("opq/kept", F, b"y"),
        ("dev/null", tarfile.CHRTYPE, (1, 3)),
        ("dev/sda", tarfile.BLKTYPE, (8, 0)),
        ("run/fifo", tarfile.FIFOTYPE, None),
        ("swap", D, None),
        ("swap", F, b"now a file"),
        ("empty", F, b""),
        ("empty-link", L, "empty"),
    ])
    write("layer_index", "basic.tar", basic)
    write("layer_index", "basic.tar.gz", gzip.compress(basic, mtime=0))
    zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=basic, check=True,
                         stdout=subprocess.PIPE).stdout
    write("layer_index", "basic.tar.zst", zst)

    long = "d" * 120 + "/" + "n" * 150
    write("layer_index", "pax.tar", tar([
        (long, F, b"long name", {"uid": "4294967295", "mtime": "1700000000.5",
                                 "SCHILY.xattr.security.capability": "x"}),
        ("link", S, "t" * 300),
        ("hard", L, long),
    ]))
    write("layer_index", "gnu.tar", tar([
        ("g" * 200, F, b"gnu long name"),
        ("gl", L, "g" * 200),
    ], fmt=tarfile.GNU_FORMAT))
    write("layer_index", "ustar.tar", tar([
        ("dir", D, None),
        ("dir/file", F, b"ustar"),
        ("dir/.wh..wh.plnk", F, b""),
        ("dir/.wh.file", F, b""),
    ], fmt=tarfile.USTAR_FORMAT))
    write("layer_index", "empty.tar", b"\0" * 1024)
    # A GNU long name ends at its first NUL, as in GNU tar and Go.
    write("layer_index", "gnu-nul.tar", tar([("g" * 100 + "\x00x", F, b"abc")],
                                            fmt=tarfile.GNU_FORMAT))
    # Fails in the index: kept apart so that it does not end the others early.
    write("layer_index", "loop.tar", tar([
        ("loop", S, "loop/x"),
        ("loop/y", F, b"a symlink loop as parent"),
    ]))
    write("layer_index", "missing-link.tar", tar([("missing-link", L, "nowhere")]))
    write("layer_index", "uid-overflow.tar", tar([("f", F, b"x", {"uid": "4294967296"})]))
    # PAX values are length-prefixed, so a path may hold a NUL byte; the
    # kernel would read "etc\0evil" as "etc". The layer must be refused.
    write("layer_index", "nul-in-pax-path.tar", tar([
        ("placeholder", F, b"abc", {"path": "etc\x00evil"}),
        ("x", S, "t", {"linkpath": "tar\x00get"}),
    ]))


def corners():
    """The tar corners of tests/fixtures/hostile.py, read as Go reads them:
    old-style directories, sizes on entries without data, odd numeric
    fields, repeated extensions, sparse files of every GNU format, zstd
    behind a skippable frame."""
    import sys
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
    import hostile
    for fn in (hostile.old_dir_slash, hostile.regular_slash, hostile.header_only_sizes,
               hostile.numeric_fields, hostile.repeated_ext, hostile.root_entry):
        write("layer_index", "corner-%s.tar" % fn.__name__.replace("_", "-"), fn())
    # Eight fragments: the old GNU format needs an extension block.
    for name, options in [("gnu", ["--format=gnu"]),
                          ("pax00", ["--format=posix", "--sparse-version=0.0"]),
                          ("pax01", ["--format=posix", "--sparse-version=0.1"]),
                          ("pax10", ["--format=posix", "--sparse-version=1.0"])]:
        write("layer_index", "corner-sparse-%s.tar" % name,
              hostile.gnu_tar_sparse(*options, fragments=8, spacing=8192, size=98304))
    write("layer_index", "corner-xattr-name-nul.tar",
          hostile.members([]) + hostile.pax([("SCHILY.xattr.user.a\0b", "v")])
          + hostile.file_raw("x", "x") + hostile.END)
    raw = hostile.zstd_skippable_raw()
    write("layer_index", "corner-zstd-skippable.tar.zst",
          hostile.skippable(b"metadata") + hostile.zstd(raw))
    write("layer_index", "corner-pax-sparse-1.0.tar",
          hostile.members([]) + hostile.pax([
              ("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
              ("GNU.sparse.name", "sparse"), ("GNU.sparse.realsize", "4096")])
          + hostile.file_raw("GNUSparseFile.0/sparse",
                             b"1\n0\n512\n".ljust(512, b"\0") + b"d" * 512)
          + hostile.END)


def record(name, feed, fields, data):
    out = bytes([len(name)]) + name + bytes([feed])
    out += b"".join(struct.pack("<I", v) for v in fields)
    return out + bytes([len(data)]) + data


def cpio():
    write("cpio_roundtrip", "simple", record(b"etc/passwd", 0,
          [1, 0o100644, 0, 0, 1, 1700000000, 0, 0], b"root:x:0:0\n"))
    write("cpio_roundtrip", "mixed", b"".join([
        record(b"dev", 1, [2, 0o40755, 0, 0, 2, 0, 0, 0], b""),
        record(b"dev/null", 0, [3, 0o20666, 0, 0, 1, 0, 1, 3], b""),
        record(b"bin/sh", 3, [4, 0o100755, 0, 0, 2, 0, 0, 0], b"abc"),
        record(b"link", 1, [5, 0o120777, 0xffffffff, 0xffffffff, 1, 0xffffffff, 0, 0], b"/bin/sh"),
        record(b"x\xffy", 0, [6, 0o100600, 1, 1, 1, 0, 0, 0], b"odd byte name"),
        record(b"TRAILER!!!", 1, [7, 0o100644, 0, 0, 1, 0, 0, 0], b"not the end"),
        record(b"after", 0, [8, 0o100644, 0, 0, 1, 0, 0, 0], b"still read"),
    ]))
    write("cpio_roundtrip", "long-name", record(b"abcdefghij" * 25 + b"abcde", 0,
          [7, 0o100644, 0, 0, 1, 0, 0, 0], b"z"))
    write("cpio_roundtrip", "short-data", record(b"f", 2, [8, 0o100644, 0, 0, 1, 0, 0, 0], b"data"))


def documents():
    sha = "sha256:" + "a" * 64
    write("documents", "oci-index.json", json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha, "size": 500,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    }).encode())
    write("documents", "oci-manifest.json", json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha, "size": 100},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "b" * 64, "size": 1000, "urls": ["x"]}],
    }).encode())
    write("documents", "config.json", json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "echo"],
                   "WorkingDir": "/", "User": "1000:1000"},
        "rootfs": {"type": "layers", "diff_ids": [sha]},
    }).encode())
    write("documents", "docker-manifest.json", json.dumps([{
        "Config": "abc.json", "RepoTags": ["busybox:latest"], "Layers": ["l/layer.tar"],
    }]).encode())


def references():
    for i, r in enumerate([
        "oci:./alpine:latest", "oci:/tmp", "oci-archive:img.tar:v1",
        "docker-archive:img.tar:busybox:latest", "docker-archive:a:b/c",
        "oci::", "linux/arm64/v8", "linux/amd64", "sha256:" + "0" * 64,
    ]):
        write("references", "ref%d" % i, r.encode())


if __name__ == "__main__":
    layers()
    corners()
    cpio()
    documents()
    references()
