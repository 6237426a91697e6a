#!/usr/bin/python3
"""Lays out bench/run's data inside a CephFS, through libcephfs (Debian's python3-cephfs).

    cephfs_populate.py CEPH_CONF FS_DIR BIG_BYTES RW_BYTES DIR_NAME DIR_ENTRIES UID GID

Creates FS_DIR (e.g. /bench) with big.bin (BIG_BYTES of random bytes, the read file), rw.bin
(RW_BYTES, the random-write target) and DIR_NAME/ with DIR_ENTRIES empty files
(file-000000 ...), everything owned by UID:GID, mode 0755/0644, and syncs it to the OSDs.
Run it with Debian's /usr/bin/python3: the `cephfs` module is not on PyPI.
"""
import os
import sys
import time

import cephfs


def write_random(fs, path, size, uid, gid):
    fd = fs.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    chunk = 4 << 20
    off = 0
    while off < size:
        n = min(chunk, size - off)
        fs.write(fd, os.urandom(n), off)
        off += n
    fs.fsync(fd, 0)
    fs.close(fd)
    fs.chown(path, uid, gid)


def main():
    conf, top, big, rw, dname, entries, uid, gid = sys.argv[1:9]
    big, rw, entries, uid, gid = int(big), int(rw), int(entries), int(uid), int(gid)
    t0 = time.time()
    fs = cephfs.LibCephFS(conffile=conf)
    fs.mount()
    top = top.encode()
    fs.mkdirs(top, 0o755)
    fs.chown(top, uid, gid)
    write_random(fs, top + b"/big.bin", big, uid, gid)
    write_random(fs, top + b"/rw.bin", rw, uid, gid)
    d = top + b"/" + dname.encode()
    fs.mkdirs(d, 0o755)
    fs.chown(d, uid, gid)
    for i in range(entries):
        p = d + b"/file-%06d" % i
        fd = fs.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
        fs.close(fd)
        fs.chown(p, uid, gid)
    fs.sync_fs()
    fs.unmount()
    fs.shutdown()
    print(f"cephfs_populate: {top.decode()} laid out in {time.time() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
