/*
 * nlmtool: an independent NLM v4 / NSM client for rnfsd's tests and benchmarks, built on libnfs's
 * raw RPC API (Debian's libnfs-dev): rpc_mount3_mnt_async and rpc_nfs3_lookup_async find the file
 * handle, rpc_nlm4_*_async and rpc_nsm1_*_async talk to the lock manager. Nothing of rnfsd's own
 * code is involved, so the server is tested against a client written by others.
 *
 *   nlmtool HOST MOUNT_PORT NFS_PORT NLM_PORT EXPORT FILE CALLER_NAME
 *
 * rnfsd serves every program on one port; nfs-ganesha has one each for MOUNT, NFS and NLM.
 * NLM_PORT serves NLM and, for the notify command, NSM.
 * Commands are read from standard input, one per line, and each prints one line:
 *
 *   lock SVID EXCL OFFSET LEN [BLOCK [RECLAIM]]   -> GRANTED | DENIED | BLOCKED | ... (nlm4_stats)
 *   test SVID EXCL OFFSET LEN                     -> GRANTED | DENIED EXCL SVID OFFSET LEN
 *   unlock SVID OFFSET LEN                        -> GRANTED | ...
 *   cancel SVID EXCL OFFSET LEN                   -> GRANTED | DENIED | ...
 *   notify MON_NAME STATE                         -> OK          (NSM SM_NOTIFY to the server)
 *   null                                          -> OK          (NLM NULL)
 *   fh                                            -> the file handle, in hex
 *   flood COUNT QD SVID                           -> GRANTED g DENIED_NOLOCKS n OTHER o
 *       COUNT exclusive LOCKs by one owner of distinct, separated one-byte ranges (2i, 1), QD in
 *       flight at once: what a hostile client does to grow the server's lock state.
 *   bench ROUNDS QD                               -> ROUNDS N SECONDS S PER_SECOND R
 *       ROUNDS lock/unlock round trips (an exclusive LOCK, then its UNLOCK), QD of them in flight
 *       at once, each slot with its own owner (svid) and range so they never conflict.
 *
 * An RPC failure prints "ERROR <text>" and exits 2; a malformed command prints "ERROR" and exits 2.
 * The owner handle (oh) of svid S is the text "oh-S".
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>
#include <nfsc/libnfs-raw-nlm.h>
#include <nfsc/libnfs-raw-nsm.h>

#define WAIT_MS 20000
#define QD_MAX 256

static const char *caller;
static char fh_buf[128];
static unsigned fh_len;

struct pending {
    int done;
    int status;
    int nlm_stat;
    nlm4_holder holder;
    int has_holder;
    char holder_oh[64];
    char error[256];
    void *data;
};

static void die(const char *what, const char *detail) {
    printf("ERROR %s %s\n", what, detail ? detail : "");
    fflush(stdout);
    exit(2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs the event loop until *done is set or WAIT_MS pass. */
static void wait_for(struct rpc_context *rpc, int *done) {
    double deadline = now_s() + WAIT_MS / 1000.0;
    while (!*done) {
        struct pollfd pfd = {.fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc)};
        if (now_s() > deadline)
            die("timeout", "no reply");
        if (poll(&pfd, 1, 100) < 0)
            die("poll", "failed");
        if (rpc_service(rpc, pfd.revents) < 0)
            die("service", rpc_get_error(rpc));
    }
}

static void generic_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct pending *p = private_data;
    (void)rpc;
    p->status = status;
    if (status != RPC_STATUS_SUCCESS)
        snprintf(p->error, sizeof p->error, "%s", data ? (char *)data : "cancelled");
    p->data = data;
    p->done = 1;
}

static struct rpc_context *connect_to(const char *host, int port) {
    struct rpc_context *rpc = rpc_init_context();
    struct pending p = {0};
    if (!rpc)
        die("rpc_init_context", NULL);
    if (rpc_connect_async(rpc, host, port, generic_cb, &p) != 0)
        die("connect", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("connect", p.error);
    return rpc;
}

static void mnt_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct pending *p = private_data;
    generic_cb(rpc, status, data, private_data);
    if (status == RPC_STATUS_SUCCESS) {
        mountres3 *res = data;
        p->nlm_stat = res->fhs_status;
        if (res->fhs_status == MNT3_OK) {
            fh_len = res->mountres3_u.mountinfo.fhandle.fhandle3_len;
            if (fh_len > sizeof fh_buf)
                die("mount", "handle too long");
            memcpy(fh_buf, res->mountres3_u.mountinfo.fhandle.fhandle3_val, fh_len);
        }
    }
}

static void lookup_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct pending *p = private_data;
    generic_cb(rpc, status, data, private_data);
    if (status == RPC_STATUS_SUCCESS) {
        LOOKUP3res *res = data;
        p->nlm_stat = res->status;
        if (res->status == NFS3_OK) {
            nfs_fh3 *fh = &res->LOOKUP3res_u.resok.object;
            if (fh->data.data_len > sizeof fh_buf)
                die("lookup", "handle too long");
            fh_len = fh->data.data_len;
            memcpy(fh_buf, fh->data.data_val, fh_len);
        }
    }
}

/* MOUNT the export, then LOOKUP each component of FILE. */
static void find_handle(const char *host, int mount_port, int nfs_port, const char *export,
                        const char *file) {
    struct rpc_context *rpc = connect_to(host, mount_port);
    struct pending p = {0};
    char path[1024], *save = NULL, *name;
    if (rpc_mount3_mnt_async(rpc, mnt_cb, (char *)export, &p) != 0)
        die("mount", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS || p.nlm_stat != MNT3_OK)
        die("mount", p.error[0] ? p.error : "refused");
    rpc_destroy_context(rpc);
    rpc = connect_to(host, nfs_port);
    snprintf(path, sizeof path, "%s", file);
    for (name = strtok_r(path, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
        LOOKUP3args args;
        struct pending q = {0};
        memset(&args, 0, sizeof args);
        args.what.dir.data.data_len = fh_len;
        args.what.dir.data.data_val = fh_buf;
        args.what.name = name;
        if (rpc_nfs3_lookup_async(rpc, lookup_cb, &args, &q) != 0)
            die("lookup", rpc_get_error(rpc));
        wait_for(rpc, &q.done);
        if (q.status != RPC_STATUS_SUCCESS || q.nlm_stat != NFS3_OK)
            die("lookup", q.error[0] ? q.error : name);
    }
    rpc_destroy_context(rpc);
}

static const char *stat_name(int s) {
    static const char *names[] = {"GRANTED", "DENIED", "DENIED_NOLOCKS", "BLOCKED",
                                  "DENIED_GRACE_PERIOD", "DEADLCK", "ROFS", "STALE_FH",
                                  "FBIG", "FAILED"};
    return s >= 0 && s < 10 ? names[s] : "UNKNOWN";
}

static void fill_lock(nlm4_lock *l, char *oh, unsigned svid, uint64_t off, uint64_t len) {
    snprintf(oh, 32, "oh-%u", svid);
    l->caller_name = (char *)caller;
    l->fh.data.data_len = fh_len;
    l->fh.data.data_val = fh_buf;
    l->oh = oh;
    l->svid = svid;
    l->l_offset = off;
    l->l_len = len;
}

static nlm_cookie cookie_of(uint32_t *c) {
    nlm_cookie k;
    k.data.data_len = sizeof *c;
    k.data.data_val = (char *)c;
    return k;
}

/* The status word of LOCK, UNLOCK and CANCEL results (all { cookie; nlm4_stat }). */
static void res_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct pending *p = private_data;
    generic_cb(rpc, status, data, private_data);
    if (status == RPC_STATUS_SUCCESS)
        p->nlm_stat = ((NLM4_LOCKres *)data)->status;
}

static void test_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct pending *p = private_data;
    generic_cb(rpc, status, data, private_data);
    if (status == RPC_STATUS_SUCCESS) {
        NLM4_TESTres *res = data;
        p->nlm_stat = res->reply.status;
        if (res->reply.status == NLM4_DENIED) {
            p->has_holder = 1;
            p->holder = res->reply.nlm4_testreply_u.lock.holder;
        }
    }
}

static uint32_t next_cookie;

static int do_lock(struct rpc_context *rpc, unsigned svid, int excl, uint64_t off, uint64_t len,
                   int block, int reclaim) {
    NLM4_LOCKargs a;
    struct pending p = {0};
    char oh[32];
    uint32_t c = ++next_cookie;
    memset(&a, 0, sizeof a);
    a.cookie = cookie_of(&c);
    a.block = block;
    a.exclusive = excl;
    a.reclaim = reclaim;
    a.state = 1;
    fill_lock(&a.lock, oh, svid, off, len);
    if (rpc_nlm4_lock_async(rpc, res_cb, &a, &p) != 0)
        die("lock", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("lock", p.error);
    return p.nlm_stat;
}

static int do_unlock(struct rpc_context *rpc, unsigned svid, uint64_t off, uint64_t len) {
    NLM4_UNLOCKargs a;
    struct pending p = {0};
    char oh[32];
    uint32_t c = ++next_cookie;
    memset(&a, 0, sizeof a);
    a.cookie = cookie_of(&c);
    fill_lock(&a.lock, oh, svid, off, len);
    if (rpc_nlm4_unlock_async(rpc, res_cb, &a, &p) != 0)
        die("unlock", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("unlock", p.error);
    return p.nlm_stat;
}

static int do_cancel(struct rpc_context *rpc, unsigned svid, int excl, uint64_t off, uint64_t len) {
    NLM4_CANCargs a;
    struct pending p = {0};
    char oh[32];
    uint32_t c = ++next_cookie;
    memset(&a, 0, sizeof a);
    a.cookie = cookie_of(&c);
    a.block = 1;
    a.exclusive = excl;
    fill_lock(&a.lock, oh, svid, off, len);
    if (rpc_nlm4_cancel_async(rpc, res_cb, &a, &p) != 0)
        die("cancel", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("cancel", p.error);
    return p.nlm_stat;
}

static void do_test(struct rpc_context *rpc, unsigned svid, int excl, uint64_t off, uint64_t len) {
    NLM4_TESTargs a;
    struct pending p = {0};
    char oh[32];
    uint32_t c = ++next_cookie;
    memset(&a, 0, sizeof a);
    a.cookie = cookie_of(&c);
    a.exclusive = excl;
    fill_lock(&a.lock, oh, svid, off, len);
    if (rpc_nlm4_test_async(rpc, test_cb, &a, &p) != 0)
        die("test", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("test", p.error);
    if (p.has_holder)
        printf("DENIED %u %u %" PRIu64 " %" PRIu64 "\n", p.holder.exclusive, p.holder.svid,
               p.holder.l_offset, p.holder.l_len);
    else
        printf("%s\n", stat_name(p.nlm_stat));
}

static void do_notify(struct rpc_context *rpc, char *name, int state) {
    NSM1_NOTIFYargs a;
    struct pending p = {0};
    a.mon_name = name;
    a.state = state;
    if (rpc_nsm1_notify_async(rpc, generic_cb, &a, &p) != 0)
        die("notify", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("notify", p.error);
    printf("OK\n");
}

static void do_null(struct rpc_context *rpc) {
    struct pending p = {0};
    if (rpc_nlm4_null_async(rpc, generic_cb, &p) != 0)
        die("null", rpc_get_error(rpc));
    wait_for(rpc, &p.done);
    if (p.status != RPC_STATUS_SUCCESS)
        die("null", p.error);
    printf("OK\n");
}

/* ---- bench: QD independent lock/unlock loops over one connection ---- */

struct slot {
    struct rpc_context *rpc;
    unsigned svid;
    int sent_lock; /* the call in flight is a LOCK (else an UNLOCK) */
    char oh[32];
    uint32_t cookie;
};

static long rounds_left, rounds_done, in_flight;

static void bench_send(struct slot *s, int lock);

static void bench_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    struct slot *s = private_data;
    (void)rpc;
    in_flight--;
    if (status != RPC_STATUS_SUCCESS)
        die("bench", data ? (char *)data : "cancelled");
    if (((NLM4_LOCKres *)data)->status != NLM4_GRANTED)
        die("bench", stat_name(((NLM4_LOCKres *)data)->status));
    if (s->sent_lock) {
        bench_send(s, 0);
    } else {
        rounds_done++;
        if (rounds_left > 0)
            bench_send(s, 1);
    }
}

/* Sends the slot's LOCK (lock = 1) or its UNLOCK. */
static void bench_send(struct slot *s, int lock) {
    uint64_t off = (uint64_t)s->svid * 16;
    int rc;
    s->cookie++;
    s->sent_lock = lock;
    if (lock) {
        NLM4_LOCKargs a;
        memset(&a, 0, sizeof a);
        rounds_left--;
        a.cookie = cookie_of(&s->cookie);
        a.exclusive = 1;
        a.state = 1;
        fill_lock(&a.lock, s->oh, s->svid, off, 8);
        rc = rpc_nlm4_lock_async(s->rpc, bench_cb, &a, s);
    } else {
        NLM4_UNLOCKargs a;
        memset(&a, 0, sizeof a);
        a.cookie = cookie_of(&s->cookie);
        fill_lock(&a.lock, s->oh, s->svid, off, 8);
        rc = rpc_nlm4_unlock_async(s->rpc, bench_cb, &a, s);
    }
    if (rc != 0)
        die("bench", rpc_get_error(s->rpc));
    in_flight++;
}

static void do_bench(struct rpc_context *rpc, long rounds, int qd) {
    static struct slot slots[QD_MAX];
    double t0;
    int i;
    if (qd < 1 || qd > QD_MAX || rounds < qd)
        die("bench", "bad arguments");
    rounds_left = rounds;
    rounds_done = 0;
    t0 = now_s();
    for (i = 0; i < qd; i++) {
        slots[i].rpc = rpc;
        slots[i].svid = 100000 + i;
        bench_send(&slots[i], 1);
    }
    while (in_flight > 0) {
        struct pollfd pfd = {.fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc)};
        if (now_s() - t0 > 600)
            die("bench", "timeout");
        if (poll(&pfd, 1, 100) < 0)
            die("poll", "failed");
        if (rpc_service(rpc, pfd.revents) < 0)
            die("service", rpc_get_error(rpc));
    }
    {
        double secs = now_s() - t0;
        printf("ROUNDS %ld SECONDS %.3f PER_SECOND %.0f\n", rounds_done, secs, rounds_done / secs);
    }
}

/* ---- flood: many distinct locks by one owner ---- */

static long flood_next, flood_count, flood_granted, flood_nolocks, flood_other;
static unsigned flood_svid;

static void flood_send(struct rpc_context *rpc);

static void flood_cb(struct rpc_context *rpc, int status, void *data, void *private_data) {
    (void)private_data;
    in_flight--;
    if (status != RPC_STATUS_SUCCESS)
        die("flood", data ? (char *)data : "cancelled");
    switch (((NLM4_LOCKres *)data)->status) {
    case NLM4_GRANTED: flood_granted++; break;
    case NLM4_DENIED_NOLOCKS: flood_nolocks++; break;
    default: flood_other++;
    }
    if (flood_next < flood_count)
        flood_send(rpc);
}

static void flood_send(struct rpc_context *rpc) {
    static char oh[32];
    static uint32_t cookie;
    NLM4_LOCKargs a;
    memset(&a, 0, sizeof a);
    cookie++;
    a.cookie = cookie_of(&cookie);
    a.exclusive = 1;
    a.state = 1;
    fill_lock(&a.lock, oh, flood_svid, (uint64_t)flood_next * 2, 1);
    flood_next++;
    if (rpc_nlm4_lock_async(rpc, flood_cb, &a, NULL) != 0)
        die("flood", rpc_get_error(rpc));
    in_flight++;
}

static void do_flood(struct rpc_context *rpc, long count, int qd, unsigned svid) {
    double t0 = now_s();
    int i;
    if (qd < 1 || qd > QD_MAX || count < qd)
        die("flood", "bad arguments");
    flood_next = flood_granted = flood_nolocks = flood_other = 0;
    flood_count = count;
    flood_svid = svid;
    for (i = 0; i < qd; i++)
        flood_send(rpc);
    while (in_flight > 0) {
        struct pollfd pfd = {.fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc)};
        if (now_s() - t0 > 600)
            die("flood", "timeout");
        if (poll(&pfd, 1, 100) < 0)
            die("poll", "failed");
        if (rpc_service(rpc, pfd.revents) < 0)
            die("service", rpc_get_error(rpc));
    }
    printf("GRANTED %ld DENIED_NOLOCKS %ld OTHER %ld\n", flood_granted, flood_nolocks, flood_other);
}

int main(int argc, char **argv) {
    struct rpc_context *rpc;
    char line[1024];
    if (argc != 8) {
        fprintf(stderr, "usage: nlmtool HOST MOUNT_PORT NFS_PORT NLM_PORT EXPORT FILE CALLER_NAME\n");
        return 2;
    }
    caller = argv[7];
    find_handle(argv[1], atoi(argv[2]), atoi(argv[3]), argv[5], argv[6]);
    rpc = connect_to(argv[1], atoi(argv[4]));
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        char cmd[32], name[512];
        unsigned svid = 0;
        int excl = 0, block = 0, reclaim = 0, n;
        uint64_t off = 0, len = 0;
        long rounds;
        if (sscanf(line, "%31s", cmd) != 1)
            continue;
        if (!strcmp(cmd, "lock")) {
            n = sscanf(line, "%*s %u %d %" SCNu64 " %" SCNu64 " %d %d", &svid, &excl, &off, &len,
                       &block, &reclaim);
            if (n < 4)
                die("syntax", line);
            printf("%s\n", stat_name(do_lock(rpc, svid, excl, off, len, block, reclaim)));
        } else if (!strcmp(cmd, "test")) {
            if (sscanf(line, "%*s %u %d %" SCNu64 " %" SCNu64, &svid, &excl, &off, &len) != 4)
                die("syntax", line);
            do_test(rpc, svid, excl, off, len);
        } else if (!strcmp(cmd, "unlock")) {
            if (sscanf(line, "%*s %u %" SCNu64 " %" SCNu64, &svid, &off, &len) != 3)
                die("syntax", line);
            printf("%s\n", stat_name(do_unlock(rpc, svid, off, len)));
        } else if (!strcmp(cmd, "cancel")) {
            if (sscanf(line, "%*s %u %d %" SCNu64 " %" SCNu64, &svid, &excl, &off, &len) != 4)
                die("syntax", line);
            printf("%s\n", stat_name(do_cancel(rpc, svid, excl, off, len)));
        } else if (!strcmp(cmd, "notify")) {
            if (sscanf(line, "%*s %511s %d", name, &n) != 2)
                die("syntax", line);
            do_notify(rpc, name, n);
        } else if (!strcmp(cmd, "null")) {
            do_null(rpc);
        } else if (!strcmp(cmd, "fh")) {
            unsigned i;
            for (i = 0; i < fh_len; i++)
                printf("%02x", (unsigned char)fh_buf[i]);
            printf("\n");
        } else if (!strcmp(cmd, "flood")) {
            if (sscanf(line, "%*s %ld %d %u", &rounds, &n, &svid) != 3)
                die("syntax", line);
            do_flood(rpc, rounds, n, svid);
        } else if (!strcmp(cmd, "bench")) {
            if (sscanf(line, "%*s %ld %d", &rounds, &n) != 2)
                die("syntax", line);
            do_bench(rpc, rounds, n);
        } else {
            die("syntax", line);
        }
    }
    rpc_destroy_context(rpc);
    return 0;
}
