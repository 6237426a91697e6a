#!/usr/bin/env python3
"""Turns bench/run's raw result lines into results.json, results.md and PNG plots.

    python3 bench/report.py --raw RAW.jsonl --out bench/results

Standard library only; the plots use gnuplot (Debian's gnuplot-nox) and are skipped without it.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

SERVERS = ["rnfsd", "ganesha", "nfsserve", "rnfsd-base", "rnfsd-copy"]
PEERS = ["ganesha", "nfsserve", "rnfsd-base", "rnfsd-copy"]
COLORS = {"rnfsd": "#d62728", "ganesha": "#1f77b4", "nfsserve": "#2ca02c", "rnfsd-base": "#ff7f0e", "rnfsd-copy": "#9467bd"}

# workload -> (headline metric, unit, plot group). Order = table order.
WORKLOADS = [
    ("seq-read-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("seq-read-1M-qd8", "mib_per_s", "MiB/s", "throughput"),
    ("rand-read-4K-qd1", "ops_per_s", "IOPS", "iops"),
    ("rand-read-4K-qd16", "ops_per_s", "IOPS", "iops"),
    ("seq-write-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("seq-write-1M-qd8", "mib_per_s", "MiB/s", "throughput"),
    ("rand-write-4K-qd1", "ops_per_s", "IOPS", "iops"),
    ("rand-write-4K-qd16", "ops_per_s", "IOPS", "iops"),
    ("meta-qd1-create", "ops_per_s", "ops/s", "meta"),
    ("meta-qd1-setattr", "ops_per_s", "ops/s", "meta"),
    ("meta-qd1-remove", "ops_per_s", "ops/s", "meta"),
    ("meta-qd16-create", "ops_per_s", "ops/s", "meta"),
    ("meta-qd16-setattr", "ops_per_s", "ops/s", "meta"),
    ("meta-qd16-remove", "ops_per_s", "ops/s", "meta"),
    ("stat-qd1-lookup", "ops_per_s", "ops/s", "meta"),
    ("stat-qd1-getattr", "ops_per_s", "ops/s", "meta"),
    ("stat-qd16-lookup", "ops_per_s", "ops/s", "meta"),
    ("stat-qd16-getattr", "ops_per_s", "ops/s", "meta"),
    ("readdirplus-50k", "entries_per_s", "entries/s", "meta"),
    ("readdirplus-10k", "entries_per_s", "entries/s", "meta"),   # bench/run --backend ceph
    ("nfs-cat-seq-read", "mib_per_s", "MiB/s", "throughput"),
    ("fio-seq-read-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("fio-rand-read-4K-qd16", "ops_per_s", "IOPS", "iops"),
    ("mix-64-clients", "ops_per_s", "ops/s", "iops"),
    ("cold-seq-read-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("cold-rand-read-4K-qd16", "ops_per_s", "IOPS", "iops"),
    # NFSv4.1 (loadgen --proto v4); one COMPOUND is one op.
    ("v4-seq-read-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("v4-seq-read-1M-qd8", "mib_per_s", "MiB/s", "throughput"),
    ("v4-rand-read-4K-qd1", "ops_per_s", "IOPS", "iops"),
    ("v4-rand-read-4K-qd16", "ops_per_s", "IOPS", "iops"),
    ("v4-seq-write-1M-qd1", "mib_per_s", "MiB/s", "throughput"),
    ("v4-seq-write-1M-qd8", "mib_per_s", "MiB/s", "throughput"),
    ("v4-getattr-qd1", "ops_per_s", "ops/s", "meta"),
    ("v4-getattr-qd16", "ops_per_s", "ops/s", "meta"),
    ("v4-open-read-close-qd1", "ops_per_s", "ops/s", "meta"),
    ("v4-open-read-close-qd16", "ops_per_s", "ops/s", "meta"),
]
MACHINE = [
    ("tcp-stream", "mib_per_s", "MiB/s", "loopback TCP, 1 MiB messages one way"),
    ("tcp-rr", "mib_per_s", "MiB/s", "loopback TCP, 16 B request / 1 MiB reply, 1 in flight"),
    ("tcp-rr-qd8", "mib_per_s", "MiB/s", "loopback TCP, 16 B request / 1 MiB reply, 8 in flight"),
    ("tcp-rr-sendfile", "mib_per_s", "MiB/s",
     "as tcp-rr, each reply sent by sendfile from the page cache of the servers' big.bin"),
    ("tcp-rr-sendfile-qd8", "mib_per_s", "MiB/s", "as tcp-rr-sendfile, 8 in flight"),
    ("tcp-rr-128B", "ops_per_s", "calls/s",
     "loopback TCP, 16 B request / 128 B reply, 1 in flight (blocking threads, no NFS)"),
    ("page-cache-read", "mib_per_s", "MiB/s", "dd of the warm 1 GiB file, bs=1M"),
]
# Workloads with one small call in flight, read against tcp-rr-128B.
ONE_CALL_WORKLOADS = ("stat-qd1-lookup", "stat-qd1-getattr", "meta-qd1-setattr", "meta-qd1-remove",
                      "rand-read-4K-qd1", "rand-write-4K-qd1")
# The latency distribution loadgen reports: (JSON key, percentile label), in order.
LATENCY_POINTS = [("p1_us", "1"), ("p10_us", "10"), ("p25_us", "25"), ("p50_us", "50"),
                  ("p75_us", "75"), ("p90_us", "90"), ("p95_us", "95"), ("p99_us", "99"),
                  ("p999_us", "99.9"), ("max_us", "max")]
# Workloads drawn in latency.png (those with a per-call latency distribution from loadgen).
LATENCY_WORKLOADS = ("rand-read-4K-qd1", "rand-read-4K-qd16", "stat-qd1-getattr",
                     "stat-qd16-lookup", "seq-read-1M-qd8", "rand-write-4K-qd16",
                     "meta-qd16-create", "readdirplus-50k", "mix-64-clients")
STATUS_TEXT = {
    "unsupported": "n/a (not supported)",
    "error": "error",
    "timeout": "timeout",
    "skipped": "skipped",
}


def load(path):
    meta, recs = {}, []
    for line in open(path):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("record") == "meta":
            meta = r
        elif r.get("record") == "meta-end":
            meta.update({k: v for k, v in r.items() if k != "record"})
        else:
            recs.append(r)
    return meta, recs


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(recs, workload, server, metric, group="meta"):
    """Medians over the repetitions that succeeded, or the failure status if none did."""
    rs = [r for r in recs if r.get("workload") == workload and r.get("server") == server]
    if not rs:
        return None
    ok = [r for r in rs if r.get("status") == "ok"]
    if not ok:
        st = rs[-1].get("status", "error")
        return {"status": st, "message": rs[-1].get("message", ""), "reps": len(rs)}
    s = {"status": "ok", "reps": len(ok), "failed_reps": len(rs) - len(ok)}
    s["value"] = median([r.get(metric) for r in ok])
    s["loadavg1"] = [r["loadavg1"] for r in rs if r.get("loadavg1") is not None]
    s["values"] = [r.get(metric) for r in ok]
    for k in ("mib_per_s", "ops_per_s", "p50_us", "p99_us", "server_cpu_s", "server_hwm_kib",
              "client_cpu_s", "secs") + tuple(k for k, _ in LATENCY_POINTS):
        s[k] = median([r.get(k) for r in ok])
    byte_wl = group == "throughput" or any(unit == "MiB/s" and name == workload
                                           for name, _, unit, _ in MACHINE)
    cpu = []
    for r in ok:
        c = r.get("server_cpu_s")
        if c is None:
            continue
        if byte_wl and r.get("bytes"):
            cpu.append(c / (r["bytes"] / 2**30))
        elif r.get("ops"):
            n = r.get("entries") or r["ops"]
            cpu.append(c / n * 1000)
    # A negative count (an older loadgen subtracted sums, and threads that ended took theirs
    # along) is no measurement.
    cs = [r["server_ctx_switches"] / r["ops"] for r in ok
          if r.get("server_ctx_switches") is not None and r.get("ops")
          and r["server_ctx_switches"] >= 0]
    s["ctx_switches_per_op"] = median(cs) if cs else None
    s["cpu_unit"] = "s/GiB" if byte_wl else ("s/1k entries" if workload.startswith("readdir") else "s/1k ops")
    s["cpu_per_unit"] = median(cpu) if cpu else None
    return s


def fmt(v, unit=""):
    if v is None:
        return "–"
    if abs(v) >= 100:
        t = f"{v:,.0f}"
    elif abs(v) >= 10:
        t = f"{v:.1f}"
    elif abs(v) >= 1:
        t = f"{v:.2f}"
    else:
        t = f"{v:.3g}"
    return f"{t} {unit}".strip()


def cell(s, unit=""):
    if s is None:
        return "–"
    if s["status"] != "ok":
        return STATUS_TEXT.get(s["status"], s["status"])
    t = fmt(s["value"], unit)
    if s.get("failed_reps"):
        t += f" ({s['failed_reps']} rep failed)"
    return t


def ratio(a, b, key="value"):
    if not a or not b or a["status"] != "ok" or b["status"] != "ok":
        return "–"
    x, y = a.get(key), b.get(key)
    if not x or not y:
        return "–"
    return f"{x / y:.2f}×"


def build(meta, recs):
    servers = [s for s in SERVERS if any(r.get("server") == s for r in recs)]
    seen = {r.get("workload") for r in recs}
    known = [w for w in WORKLOADS if w[0] in seen]
    extra = sorted(seen - {w[0] for w in WORKLOADS} - {m[0] for m in MACHINE} - {None})
    known += [(w, "ops_per_s", "ops/s", "meta") for w in extra]
    table = {}
    for wl, metric, unit, group in known:
        table[wl] = {s: summarize(recs, wl, s, metric, group) for s in servers}
    machine = {}
    for wl, metric, _, _ in MACHINE:
        m = summarize(recs, wl, "machine", metric, "throughput")
        if m:
            machine[wl] = m
    return servers, known, table, machine


def markdown(meta, servers, known, table, machine):
    peers = [p for p in PEERS if p in servers]
    L = []
    L.append("# rnfsd benchmark results\n")
    L.append(f"Run {meta.get('date', '?')} · rnfsd built from {meta.get('rnfsd_source', '?')} "
             f"(work tree then at `{meta.get('rnfsd_rev', '?')}`) · " +
             (f"rnfsd-base = rnfsd built from `{meta['baseline_rev']}` · " if meta.get("baseline_rev") else "") +
             (f"nfs-ganesha {meta.get('ganesha', '?')} (FSAL_CEPH) · " if meta.get("backend") == "ceph" else
              f"nfs-ganesha {meta.get('ganesha', '?')} (VFS) · nfsserve {meta.get('nfsserve', '?')} "
              "(bench/nfsserve-mirror) · ") +
             f"{meta.get('cores', '?')} cores, Linux {meta.get('kernel', '?')} · "
             f"{meta.get('reps', '?')} repetition(s){' · **quick**' if meta.get('quick') else ''}.")
    L.append("")
    if meta.get("backend") == "ceph":
        L.append(f"**Backend: CephFS.** One throw-away Ceph {meta.get('ceph', '?')} cluster on the same "
                 "machine (`scripts/ceph-cluster`: one monitor, one manager, one MDS, one OSD "
                 f"with memstore of {int(meta.get('ceph_memstore_bytes', 0)) >> 20} MiB, no "
                 "authentication); rnfsd (an export with `backend = \"ceph\"`) and nfs-ganesha "
                 "(FSAL_CEPH) serve the same CephFS directory, each through its own libcephfs client. "
                 f"Read file: {meta.get('big_size', '?')}.")
        L.append("")
    if meta.get("load_start"):
        L.append(f"Machine load (`/proc/loadavg`, 1/5/15 min): {meta['load_start']} at the start, "
                 f"{meta.get('load_end', '?')} at the end (other builds share the cores); the "
                 "`load` column gives the 1-minute average's range over each workload's runs.")
        L.append("")
    L.append("Every server ran on loopback on the same machine as the client, " +
             ("serving the same CephFS directory" if meta.get("backend") == "ceph" else
              "with its own copy of the same data (`big.bin`, only read, one file for all)") +
             ", all in one run, alternating servers workload by workload. Figures are "
             "medians over the repetitions. **Ratios are rnfsd ÷ peer: above 1 means rnfsd is "
             "faster** (for throughput and ops/s). Client: `bench/loadgen` (pipelined, one thread) "
             "unless the workload names another. Sizes: sequential "
             f"{meta.get('seq_size', '?')}, random runs {meta.get('rand_secs', '?')} s each, "
             f"{meta.get('meta_count', '?')} files for create/setattr/remove, "
             f"{meta.get('stat_count', '?')} for lookup/getattr, a {meta.get('dir_entries', '?')}-entry "
             "directory for READDIRPLUS.")
    L.append("")
    has_load = any(x and x.get("loadavg1") for row in table.values() for x in row.values())
    hdr = "| workload | unit | " + " | ".join(servers) + " | " + \
        " | ".join(f"rnfsd/{p}" for p in peers) + (" | load |" if has_load else " |")
    L.append("## Throughput and operation rate (medians)\n")
    L.append(hdr)
    L.append("|" + "---|" * (2 + len(servers) + len(peers) + (1 if has_load else 0)))
    for wl, metric, unit, _ in known:
        row = table[wl]
        cells = [cell(row.get(s)) for s in servers]
        rat = [ratio(row.get("rnfsd"), row.get(p)) for p in peers]
        load = ""
        if has_load:
            la = [v for x in row.values() if x for v in x.get("loadavg1", [])]
            load = f" {min(la):.1f}–{max(la):.1f} |" if la else " – |"
        L.append(f"| {wl} | {unit} | " + " | ".join(cells) + " | " + " | ".join(rat) + " |" + load)
    L.append("")

    L.append("## Latency per call, p50 / p99 (µs, medians over repetitions)\n")
    L.append("| workload | " + " | ".join(servers) + " |")
    L.append("|" + "---|" * (1 + len(servers)))
    for wl, *_ in known:
        row = table[wl]
        cells = []
        for s in servers:
            x = row.get(s)
            if x and x["status"] == "ok" and x.get("p50_us") is not None:
                cells.append(f"{fmt(x['p50_us'])} / {fmt(x['p99_us'])}")
            else:
                cells.append(cell(x) if x and x["status"] != "ok" else "–")
        L.append(f"| {wl} | " + " | ".join(cells) + " |")
    L.append("")

    L.append("## Server CPU and memory (medians)\n")
    L.append("CPU is the server process's utime + stime over the timed part "
             "(`/proc/PID/stat`, 10 ms ticks), per GiB moved or per 1,000 operations: lower is "
             "cheaper. Peak RSS is VmHWM, reset before each workload. Context switches: all the "
             "server's threads (`/proc/PID/task/*/status`), per call (loadgen workloads only).\n")
    L.append("| workload | unit | " + " | ".join(f"{s} CPU" for s in servers) + " | " +
             " | ".join(f"{s} peak RSS" for s in servers) + " | " +
             " | ".join(f"{s} ctx sw/call" for s in servers) + " |")
    L.append("|" + "---|" * (2 + 3 * len(servers)))
    for wl, *_ in known:
        row = table[wl]
        unit = next((x["cpu_unit"] for x in row.values() if x and x["status"] == "ok"), "")
        cpu, rss, cs = [], [], []
        for s in servers:
            x = row.get(s)
            if x and x["status"] == "ok":
                cpu.append(fmt(x.get("cpu_per_unit")))
                h = x.get("server_hwm_kib")
                rss.append(fmt(h / 1024, "MiB") if h else "–")
                cs.append(fmt(x.get("ctx_switches_per_op")))
            else:
                cpu.append("–")
                rss.append("–")
                cs.append("–")
        L.append(f"| {wl} | {unit} | " + " | ".join(cpu) + " | " + " | ".join(rss) + " | " +
                 " | ".join(cs) + " |")
    L.append("")

    if machine:
        L.append("## The machine's own limits (same run)\n")
        L.append("| measurement | value | what |")
        L.append("|---|---|---|")
        for wl, _, unit, what in MACHINE:
            if wl in machine and machine[wl]["status"] == "ok":
                L.append(f"| {wl} | {fmt(machine[wl]['value'], unit)} | {what} |")
        L.append("")
        def fraction_table(ceiling, intro, workloads, key):
            """Each workload's `key` as a percentage of the machine measurement `ceiling`."""
            c = machine.get(ceiling)
            rows = [wl for wl in workloads if wl in table]
            if not c or c["status"] != "ok" or not rows or not servers:
                return
            L.append(intro + "\n")
            L.append("| workload | " + " | ".join(servers) + " |")
            L.append("|" + "---|" * (1 + len(servers)))
            for wl in rows:
                cells = []
                for s in servers:
                    x = table[wl].get(s)
                    cells.append(f"{100 * x[key] / c['value']:.0f} %"
                                 if x and x["status"] == "ok" and x.get(key) else "–")
                L.append(f"| {wl} | " + " | ".join(cells) + " |")
            L.append("")

        fraction_table("tcp-rr", "Sequential reads as a fraction of loopback TCP request/reply "
                       "(`tcp-rr`), the ceiling for one 1 MiB READ in flight on one connection:",
                       ("seq-read-1M-qd1", "seq-read-1M-qd8", "nfs-cat-seq-read",
                        "fio-seq-read-1M-qd1"), "mib_per_s")
        fraction_table("tcp-rr-sendfile", "Sequential reads with one in flight as a fraction of "
                       "`tcp-rr-sendfile` (replies sent from the page cache with no copy on the "
                       "sending side, as a zero-copy server sends them; no NFS):",
                       ("seq-read-1M-qd1", "nfs-cat-seq-read", "fio-seq-read-1M-qd1"),
                       "mib_per_s")
        fraction_table("tcp-rr-sendfile-qd8", "Sequential reads with 8 in flight as a fraction of "
                       "`tcp-rr-sendfile-qd8`:", ("seq-read-1M-qd8",), "mib_per_s")
        fraction_table("tcp-rr-128B", "Calls with one in flight as a fraction of loopback TCP "
                       "request/reply of small messages (`tcp-rr-128B`), the ceiling for any server "
                       "answering one call at a time on one connection:",
                       ONE_CALL_WORKLOADS, "ops_per_s")

    notes = []
    for wl, *_ in known:
        for s in servers:
            x = table[wl].get(s)
            if x and x["status"] not in ("ok", "unsupported", "skipped"):
                notes.append(f"- {wl} on {s}: {x['status']}: {str(x.get('message', ''))[:200]}")
    unsup = sorted({s for wl, *_ in known for s in servers
                    if table[wl].get(s) and table[wl][s]["status"] == "unsupported"})
    if unsup:
        notes.insert(0, "- n/a (not supported): " + ", ".join(unsup) +
                     " refused the operation (e.g. NFS3ERR_ROFS while its write path is not in).")
    if notes:
        L.append("## Failures and gaps\n")
        L.extend(notes)
        L.append("")
    L.append("Raw per-repetition figures: `results.json` (`records`). Plots: `*.png`. "
             "How to read and reproduce: `bench/README.md`.")
    return "\n".join(L) + "\n"


def plot(out, servers, known, table, machine):
    if not shutil.which("gnuplot"):
        print("report: gnuplot not found, no plots", file=sys.stderr)
        return []
    made = []
    groups = [("throughput", "MiB/s", "Throughput (median), higher is better"),
              ("iops", "operations/s", "Random 4 KiB I/O (median), higher is better"),
              ("meta", "operations/s (READDIRPLUS: entries/s)", "Metadata (median), higher is better")]
    for group, ylabel, title in groups:
        rows = [(wl, table[wl]) for wl, _m, _u, g in known if g == group]
        rows = [(wl, r) for wl, r in rows if any(x and x["status"] == "ok" for x in r.values())]
        if not rows:
            continue
        dat = os.path.join(out, f"{group}.dat")
        with open(dat, "w") as f:
            for wl, r in rows:
                vals = []
                for s in servers:
                    x = r.get(s)
                    vals.append(f"{x['value']:.3f}" if x and x["status"] == "ok" else "0")
                f.write(f"{wl} " + " ".join(vals) + "\n")
        png = os.path.join(out, f"{group}.png")
        logscale = "set logscale y\n" if group == "meta" else ""
        ymin = "100" if logscale else "0"
        cols = " , ".join(f"'{dat}' using {i + 2}:xtic(1) title '{s}' lc rgb '{COLORS[s]}'"
                          for i, s in enumerate(servers))
        script = f"""
set terminal pngcairo size {max(900, 160 * len(rows))},560 font 'DejaVu Sans,10'
set output '{png}'
set title "{title}\\n(0 / missing bar = not supported or failed; see results.md)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside top center horizontal
set xrange [-0.6:{len(rows) - 0.4}]
set grid ytics
set ylabel '{ylabel}'
set yrange [{ymin}:*]
{logscale}set xtics rotate by -30 scale 0
set bmargin 7
set rmargin 6
plot {cols}
"""
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        os.remove(dat)
        if r.returncode == 0:
            made.append(png)
        else:
            print(f"report: gnuplot failed for {group}: {r.stderr[:300]}", file=sys.stderr)
    made += latency_plot(out, servers, table)
    # Ratios: rnfsd / peer for every workload both served.
    peers = [p for p in PEERS if p in servers]
    if "rnfsd" in servers and peers:
        rows = []
        for wl, *_ in known:
            r = table[wl]
            a = r.get("rnfsd")
            vals = []
            for p in peers:
                b = r.get(p)
                if a and b and a["status"] == "ok" and b["status"] == "ok" and b["value"]:
                    vals.append(a["value"] / b["value"])
                else:
                    vals.append(None)
            if any(v is not None for v in vals):
                rows.append((wl, vals))
        if rows:
            dat = os.path.join(out, "ratio.dat")
            with open(dat, "w") as f:
                for wl, vals in rows:
                    f.write(wl + " " + " ".join(f"{v:.4f}" if v else "NaN" for v in vals) + "\n")
            png = os.path.join(out, "ratio.png")
            cols = " , ".join(f"'{dat}' using {i + 2}:xtic(1) title 'rnfsd / {p}' lc rgb '{COLORS[p]}'"
                              for i, p in enumerate(peers))
            script = f"""
set terminal pngcairo size {max(900, 75 * len(rows))},600 font 'DejaVu Sans,10'
set output '{png}'
set title "rnfsd relative to each peer (median ÷ median; above 1 = rnfsd faster)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [0.0625:16]
set grid ytics
set key outside top center horizontal
set xrange [-0.6:{len(rows) - 0.4}]
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'black'
set xtics rotate by -30 scale 0
set bmargin 7
set rmargin 6
plot {cols}
"""
            r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
            os.remove(dat)
            if r.returncode == 0:
                made.append(png)
            else:
                print(f"report: gnuplot failed for ratios: {r.stderr[:300]}", file=sys.stderr)
    return made


def latency_plot(out, servers, table):
    """latency.png: per workload, each server's per-call latency at each percentile of
    LATENCY_POINTS (medians over the repetitions), one panel per workload, log scale."""
    panels = []
    for wl in LATENCY_WORKLOADS:
        curves = []
        for s in servers:
            x = (table.get(wl) or {}).get(s)
            if x and x["status"] == "ok" and all(x.get(k) for k, _ in LATENCY_POINTS):
                curves.append((s, [x[k] for k, _ in LATENCY_POINTS]))
        if curves:
            panels.append((wl, curves))
    if not panels:
        return []
    cols = 3
    rows = (len(panels) + cols - 1) // cols
    png = os.path.join(out, "latency.png")
    xtics = ", ".join(f'"{label}" {i}' for i, (_, label) in enumerate(LATENCY_POINTS))
    script = [f"""
set terminal pngcairo size 1500,{380 * rows} font 'DejaVu Sans,9'
set output '{png}'
set multiplot layout {rows},{cols} title "Latency per call by percentile (median over repetitions; µs, log scale; lower is better)"
set logscale y
set grid xtics ytics
set xtics ({xtics})
set xlabel 'percentile'
set ylabel 'µs'
set key top left
"""]
    dats = []
    for wl, curves in panels:
        dat = os.path.join(out, f"latency-{wl}.dat")
        dats.append(dat)
        with open(dat, "w") as f:
            for i in range(len(LATENCY_POINTS)):
                f.write(f"{i} " + " ".join(f"{c[1][i]:.3f}" for c in curves) + "\n")
        plots = " , ".join(f"'{dat}' using 1:{j + 2} with linespoints title '{s}' "
                           f"lc rgb '{COLORS.get(s, '#000000')}' lw 2 pt 7 ps 0.6"
                           for j, (s, _) in enumerate(curves))
        script.append(f"set title '{wl}'\nplot {plots}\n")
    script.append("unset multiplot\n")
    r = subprocess.run(["gnuplot"], input="".join(script), text=True, capture_output=True)
    for dat in dats:
        os.remove(dat)
    if r.returncode != 0:
        print(f"report: gnuplot failed for latency: {r.stderr[:300]}", file=sys.stderr)
        return []
    return [png]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    meta, recs = load(a.raw)
    os.makedirs(a.out, exist_ok=True)
    servers, known, table, machine = build(meta, recs)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"meta": meta, "medians": table, "machine": machine, "records": recs}, f,
                  indent=1, sort_keys=False)
    md = markdown(meta, servers, known, table, machine)
    with open(os.path.join(a.out, "results.md"), "w") as f:
        f.write(md)
    for p in plot(a.out, servers, known, table, machine):
        print(f"report: wrote {p}", file=sys.stderr)
    print(md)


if __name__ == "__main__":
    main()
