#!/usr/bin/env python3
"""The services an NFS client host runs for the lock server to call: a portmapper (UDP, port 111
of ADDRESS), an NLM v4 service that answers GRANTED, and a status monitor (NSM v1) that answers
SM_NOTIFY. Each call received is printed on stdout, one line:

    GRANTED caller_name svid exclusive offset length
    RES procedure status        (an answer to a _MSG call: LOCK_RES is procedure 12)
    NOTIFY mon_name state

Usage: fakeclient.py ADDRESS [--silent-nlm]
With --silent-nlm the NLM service never answers (a client whose callback port is dead).
Written from RFC 5531 (RPC), RFC 1833 (portmapper v2) and XNFS (NLM, NSM); for rnfsd's tests.
"""
import select
import socket
import struct
import sys

PMAP, NLM, NSM = 100000, 100021, 100024


def opaque(buf, off):
    (n,) = struct.unpack_from(">I", buf, off)
    off += 4
    return buf[off:off + n], off + ((n + 3) & ~3)


def parse_call(buf):
    """(xid, prog, vers, proc, args) of an RPC call, skipping credential and verifier."""
    xid, mtype, rpcvers, prog, vers, proc = struct.unpack_from(">6I", buf, 0)
    off = 24
    for _ in range(2):  # credential, verifier
        _flavor, n = struct.unpack_from(">2I", buf, off)
        off += 8 + ((n + 3) & ~3)
    return xid, prog, vers, proc, buf[off:]


def reply(xid, results=b""):
    # REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS
    return struct.pack(">6I", xid, 1, 0, 0, 0, 0) + results


def main():
    address = sys.argv[1]
    silent_nlm = "--silent-nlm" in sys.argv
    pmap = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pmap.bind((address, 111))
    nlm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nlm.bind((address, 0))
    nsm = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    nsm.bind((address, 0))
    ports = {NLM: nlm.getsockname()[1], NSM: nsm.getsockname()[1]}
    print("READY", flush=True)
    while True:
        ready, _, _ = select.select([pmap, nlm, nsm], [], [])
        for sock in ready:
            buf, peer = sock.recvfrom(65536)
            try:
                xid, prog, vers, proc, args = parse_call(buf)
            except struct.error:
                continue
            if sock is pmap and prog == PMAP and proc == 3:  # GETPORT
                want, _wvers, prot, _ = struct.unpack_from(">4I", args, 0)
                port = ports.get(want, 0) if prot == 17 else 0
                sock.sendto(reply(xid, struct.pack(">I", port)), peer)
            elif sock is nlm and prog == NLM and proc == 5:  # GRANTED(nlm4_testargs)
                cookie, off = opaque(args, 0)
                (exclusive,) = struct.unpack_from(">I", args, off)
                caller, off = opaque(args, off + 4)
                _fh, off = opaque(args, off)
                _oh, off = opaque(args, off)
                svid, offset, length = struct.unpack_from(">iQQ", args, off)
                print("GRANTED %s %d %d %d %d" % (caller.decode(), svid, exclusive, offset, length),
                      flush=True)
                if not silent_nlm:
                    res = struct.pack(">I", len(cookie)) + cookie + b"\0" * (-len(cookie) % 4)
                    sock.sendto(reply(xid, res + struct.pack(">I", 0)), peer)
            elif sock is nlm and prog == NLM and proc in (12, 13, 14, 15):  # *_RES(nlm4_res)
                _cookie, off = opaque(args, 0)
                (stat,) = struct.unpack_from(">I", args, off)
                print("RES %d %d" % (proc, stat), flush=True)
            elif sock is nsm and prog == NSM and proc == 6:  # SM_NOTIFY(stat_chge)
                name, off = opaque(args, 0)
                (state,) = struct.unpack_from(">i", args, off)
                print("NOTIFY %s %d" % (name.decode(), state), flush=True)
                sock.sendto(reply(xid), peer)


if __name__ == "__main__":
    main()
