#!/usr/bin/python3
"""bench/curves' report: curves.json (every run and the medians per point), curves.md (tables)
and one PNG per curve (matplotlib; Debian's python3-matplotlib, hence /usr/bin/python3).

    curves_report.py --raw RAW.jsonl --out DIR
"""
import argparse
import json
import statistics

SERVERS = ["rnfsd", "ganesha"]
COLORS = {"rnfsd": "#d62728", "ganesha": "#1f77b4"}
# (curve, workload, headline metric, unit, title, file)
CURVES = [
    ("clients", "mix-{x}-clients", "ops_per_s", "ops/s", "Mixed load vs. clients (one call in flight each)",
     "clients.png"),
    ("dirsize", "readdirplus", "entries_per_s", "entries/s", "READDIRPLUS of a whole directory vs. its size",
     "dirsize-readdirplus.png"),
    ("dirsize", "stat-qd1-lookup", "ops_per_s", "LOOKUPs/s",
     "LOOKUP of 10,000 names (one in flight) vs. directory size", "dirsize-lookup.png"),
]
KEYS = ("ops_per_s", "entries_per_s", "p50_us", "p99_us", "rss_peak_kib", "rss_mean_kib",
        "server_cpu_s", "loadavg1")


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(path):
    meta, recs = {}, []
    for line in open(path):
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r.get("record") == "meta":
            meta.update(r)
        elif r.get("record") == "meta-end":
            meta.update({k: v for k, v in r.items() if k != "record"})
        else:
            recs.append(r)
    return meta, recs


def points(recs, curve, wl_pattern, server):
    """x -> medians of the repetitions that succeeded (and the failures' count)."""
    out = {}
    for r in recs:
        if r.get("curve") != curve or r.get("server") != server:
            continue
        if r.get("workload") != wl_pattern.format(x=r.get("x")):
            continue
        out.setdefault(r["x"], []).append(r)
    res = {}
    for x, rs in sorted(out.items()):
        ok = [r for r in rs if r.get("status") == "ok"]
        p = {"reps": len(ok), "failed": len(rs) - len(ok)}
        if not ok:
            p["status"] = rs[-1].get("status")
            p["message"] = str(rs[-1].get("message", ""))[:200]
        for k in KEYS:
            p[k] = med([r.get(k) for r in ok])
        first = [r for r in ok if r.get("rep") == 1]
        p["rep1"] = {k: first[0].get(k) for k in KEYS} if first else None
        res[x] = p
    return res


def fmt(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    meta, recs = load(a.raw)
    curves = {}
    for curve, wl, metric, unit, title, png in CURVES:
        curves[png[:-4]] = {"curve": curve, "workload": wl, "metric": metric, "unit": unit, "title": title,
                            "servers": {s: points(recs, curve, wl, s) for s in SERVERS}}
    with open(f"{a.out}/curves.json", "w") as f:
        json.dump({"meta": meta, "curves": {k: {**v, "servers": {s: {str(x): p for x, p in pts.items()}
                                                               for s, pts in v["servers"].items()}}
                                            for k, v in curves.items()},
                   "records": recs}, f, indent=1)

    L = ["# rnfsd and nfs-ganesha (VFS) as clients and directories grow\n",
         f"Run {meta.get('date', '?')} · rnfsd at `{meta.get('rnfsd_rev', '?')}` · nfs-ganesha "
         f"{meta.get('ganesha', '?')} · {meta.get('cores', '?')} cores, Linux {meta.get('kernel', '?')} · "
         f"median of {meta.get('reps', '?')} repetition(s), servers alternating · load (1/5/15 min) "
         f"{meta.get('load_start', '?')} at the start, {meta.get('load_end', '?')} at the end · "
         f"{meta.get('secs', '?')} s in all.\n",
         "Server RSS: `VmRSS` sampled every 0.2 s during each run (peak). Ratio: rnfsd ÷ nfs-ganesha "
         "(above 1 = rnfsd faster). Made by `bench/curves` (`bench/run --curves`).\n"]
    for name, c in curves.items():
        r, g = c["servers"]["rnfsd"], c["servers"]["ganesha"]
        xs = sorted(set(r) | set(g))
        if not xs:
            continue
        L.append(f"## {c['title']} (`{name}.png`)\n")
        L.append(f"| {'clients' if c['curve'] == 'clients' else 'entries'} | rnfsd {c['unit']} | ganesha "
                 f"{c['unit']} | ratio | rnfsd p99 µs | ganesha p99 µs | rnfsd peak RSS MiB | "
                 "ganesha peak RSS MiB | load |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for x in xs:
            pr, pg = r.get(x, {}), g.get(x, {})
            vr, vg = pr.get(c["metric"]), pg.get(c["metric"])
            rat = f"{vr / vg:.2f}×" if vr and vg else "–"
            cell = lambda p, v: fmt(v) if v is not None else (p.get("status") or "–")
            las = [v for v in (pr.get("loadavg1"), pg.get("loadavg1")) if v is not None]
            L.append(f"| {x:,} | {cell(pr, vr)} | {cell(pg, vg)} | {rat} | {fmt(pr.get('p99_us'))} | "
                     f"{fmt(pg.get('p99_us'))} | {fmt((pr.get('rss_peak_kib') or 0) / 1024 or None)} | "
                     f"{fmt((pg.get('rss_peak_kib') or 0) / 1024 or None)} | "
                     + (f"{min(las):.1f}–{max(las):.1f} |" if las else "– |"))
        if name == "dirsize-readdirplus":
            L.append("")
            L.append("The first repetition lists each directory for the first time since the servers "
                     "started; later ones find what each server kept (nfs-ganesha's entry cache, "
                     "rnfsd's remembered listing). First pass alone, entries/s: " + "; ".join(
                         f"{x:,}: rnfsd {fmt((r.get(x, {}).get('rep1') or {}).get(c['metric']))}, "
                         f"ganesha {fmt((g.get(x, {}).get('rep1') or {}).get(c['metric']))}" for x in xs) + ".")
        L.append("")
    with open(f"{a.out}/curves.md", "w") as f:
        f.write("\n".join(L))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("curves_report: no matplotlib: PNGs skipped")
        return
    for name, c in curves.items():
        fig, axs = plt.subplots(1, 3, figsize=(15, 4.2))
        any_pts = False
        for s in SERVERS:
            pts = {x: p for x, p in c["servers"][s].items() if p.get(c["metric"]) is not None}
            if not pts:
                continue
            any_pts = True
            xs = sorted(pts)
            kw = dict(marker="o", color=COLORS[s], label=s)
            axs[0].plot(xs, [pts[x][c["metric"]] for x in xs], **kw)
            axs[1].plot(xs, [pts[x]["p99_us"] / 1000 for x in xs], **kw)
            axs[2].plot(xs, [(pts[x]["rss_peak_kib"] or 0) / 1024 for x in xs], **kw)
        if not any_pts:
            plt.close(fig)
            continue
        xl = "clients (connections from distinct 127.0.x.y)" if c["curve"] == "clients" else "directory entries"
        allx = sorted({x for s in SERVERS for x in c["servers"][s]})
        for i, (ax, yl) in enumerate(zip(axs, (c["unit"], "p99 latency per call (ms, log)",
                                               "server peak RSS (MiB)"))):
            ax.set_xscale("log")
            ax.set_xticks(allx)
            ax.set_xticklabels([f"{x // 1000000}M" if x >= 1000000 and x % 1000000 == 0 else f"{x // 1000}k" if x >= 10000 else f"{x:,}" for x in allx])
            ax.minorticks_off()
            ax.set_xlabel(xl)
            ax.set_ylabel(yl)
            ax.grid(True, alpha=0.3)
            if i == 1:
                ax.set_yscale("log")
            else:
                ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
            ax.legend()
        fig.suptitle(f"{c['title']} · median of {meta.get('reps', '?')} · {meta.get('date', '')[:10]} · "
                     f"load {meta.get('load_start', '?')}")
        fig.tight_layout()
        fig.savefig(f"{a.out}/{name}.png", dpi=90)
        plt.close(fig)


if __name__ == "__main__":
    main()
