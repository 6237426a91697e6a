#!/usr/bin/env python3
"""NLM v4 calls libnfs has no API for, encoded by hand (XNFS chapter 10, RFC 1813 appendix II),
for rnfsd's tests:

    nlmraw.py [--from ADDR] PORT FH_HEX CALLER CALL ARGS...
    CALL:
    lock SVID EXCL OFF LEN                               -> the nlm4_stats name (TCP, LOCK)
    test SVID EXCL OFF LEN                               -> the nlm4_stats name (TCP, TEST)
    free_all                                             -> "sent" (UDP, FREE_ALL for CALLER)
    nlmraw.py PORT FH_HEX CALLER share OH MODE ACCESS    -> the nlm4_stats name (TCP, SHARE)
    nlmraw.py PORT FH_HEX CALLER unshare OH              -> the nlm4_stats name (TCP, UNSHARE)
    nlmraw.py PORT FH_HEX CALLER lock_msg SVID OFF LEN   -> "sent" (UDP, LOCK_MSG: the answer
                                                           comes back as a LOCK_RES call)
--from sends from ADDR (another loopback address: another client host). MODE is the deny mode (0 none, 1 read, 2 write, 3 both), ACCESS the access (1 read, 2 write, 3).
"""
import socket
import struct
import sys

NLM = 100021
STATS = ["GRANTED", "DENIED", "DENIED_NOLOCKS", "BLOCKED", "DENIED_GRACE_PERIOD", "DEADLCK",
         "ROFS", "STALE_FH", "FBIG", "FAILED"]


def opaque(b):
    return struct.pack(">I", len(b)) + b + b"\0" * (-len(b) % 4)


def call(xid, proc, args):
    # CALL, RPC v2, NLM v4, AUTH_NONE credential and verifier
    return struct.pack(">6I", xid, 0, 2, NLM, 4, proc) + struct.pack(">4I", 0, 0, 0, 0) + args


SOURCE = None


def over_tcp(port, msg):
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=SOURCE) as s:
        s.sendall(struct.pack(">I", 0x80000000 | len(msg)) + msg)
        head = s.recv(4, socket.MSG_WAITALL)
        (n,) = struct.unpack(">I", head)
        return s.recv(n & 0x7FFFFFFF, socket.MSG_WAITALL)


def res_stat(reply):
    """The status of nlm4_res (LOCK), or of nlm4_testres without its holder (TEST)."""
    return share_stat(reply)


def share_stat(reply):
    # xid, REPLY, MSG_ACCEPTED, verifier (flavor, length 0), SUCCESS, then nlm4_shareres
    (accept,) = struct.unpack_from(">I", reply, 20)
    if accept != 0:
        return "RPC_ERROR_%d" % accept
    (clen,) = struct.unpack_from(">I", reply, 24)
    off = 28 + ((clen + 3) & ~3)
    (stat,) = struct.unpack_from(">I", reply, off)
    return STATS[stat] if stat < len(STATS) else str(stat)


def main():
    global SOURCE
    argv = sys.argv[1:]
    if argv[0] == "--from":
        SOURCE = (argv[1], 0)
        argv = argv[2:]
    port, fh, caller, what = int(argv[0]), bytes.fromhex(argv[1]), argv[2].encode(), argv[3]
    rest = argv[4:]
    cookie = opaque(b"ck")
    if what in ("share", "unshare"):
        oh = rest[0].encode()
        mode, access = (int(rest[1]), int(rest[2])) if what == "share" else (0, 0)
        share = opaque(caller) + opaque(fh) + opaque(oh) + struct.pack(">2I", mode, access)
        args = cookie + share + struct.pack(">I", 0)  # reclaim = false
        print(share_stat(over_tcp(port, call(7, 20 if what == "share" else 21, args))))
    elif what in ("lock", "test"):
        svid, excl, off, length = (int(x) for x in rest[:4])
        alock = opaque(caller) + opaque(fh) + opaque(b"oh-%d" % svid) + struct.pack(">iQQ", svid, off, length)
        if what == "lock":
            args = cookie + struct.pack(">2I", 0, excl) + alock + struct.pack(">Ii", 0, 1)
        else:
            args = cookie + struct.pack(">I", excl) + alock
        print(res_stat(over_tcp(port, call(9, 2 if what == "lock" else 1, args))))
    elif what == "free_all":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if SOURCE:
            s.bind(SOURCE)
        s.settimeout(10)
        s.sendto(call(10, 23, opaque(caller) + struct.pack(">i", 3)), ("127.0.0.1", port))
        s.recvfrom(512)  # the (empty) reply: FREE_ALL has run
        print("done")
    elif what == "lock_msg":
        svid, off, length = int(rest[0]), int(rest[1]), int(rest[2])
        alock = opaque(caller) + opaque(fh) + opaque(b"oh-%d" % svid) + struct.pack(">iQQ", svid, off, length)
        args = cookie + struct.pack(">2I", 0, 1) + alock + struct.pack(">Ii", 0, 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(call(8, 7, args), ("127.0.0.1", port))
        print("sent")
    else:
        sys.exit("unknown call " + what)


if __name__ == "__main__":
    main()
