#!/usr/bin/env python3
"""Small helpers for bench/run (standard library only). Each subcommand prints JSON lines.

  util.py progress                     JSON result lines on stdin -> one terse line each (stderr)
  util.py meta KEY=VALUE...            the run's metadata record
  util.py third-party KEY=VALUE...     a result line for a third-party client run (nfs-cat)
  util.py fio FIO_JSON RC KEY=VALUE... a result line from fio's JSON output
  util.py dd DD_STDERR KEY=VALUE...    a result line from dd's closing line
"""
import json
import re
import sys


def kv(args):
    out = {}
    for a in args:
        k, _, v = a.partition("=")
        try:
            out[k] = json.loads(v)
        except ValueError:
            out[k] = v
    return out


def progress():
    for line in sys.stdin:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        who = f"    {r.get('server', ''):9} {r.get('workload', ''):26}"
        if r.get("status") != "ok":
            print(f"{who} {r.get('status')}: {str(r.get('message', ''))[:100]}", file=sys.stderr)
            continue
        if r.get("bytes"):
            fig = f"{r['mib_per_s']:9.1f} MiB/s"
        elif "entries_per_s" in r:
            fig = f"{r['entries_per_s']:9.0f} entries/s"
        else:
            fig = f"{r['ops_per_s']:9.0f} ops/s"
        lat = ""
        if r.get("p50_us") is not None:
            lat = f"  p50 {r['p50_us']:.0f} us  p99 {r['p99_us']:.0f} us"
        cpu = f"  server cpu {r['server_cpu_s']:.2f} s" if "server_cpu_s" in r else ""
        cli = f"  client cpu {r['client_cpu_s']:.2f} s" if "client_cpu_s" in r else ""
        print(f"{who} {fig}{lat}{cpu}{cli}", file=sys.stderr)


def third_party(args):
    r = kv(args)
    b, secs = r["bytes"], r["secs"]
    r.update(kind="third-party", status="ok", mib_per_s=b / secs / 2**20,
             ops=b // 2**20, ops_per_s=b / 2**20 / secs)
    print(json.dumps(r))


def fio(path, rc, args):
    base = kv(args)
    base["kind"] = "third-party"
    rc = int(rc)
    try:
        text = open(path).read()
        # fio may print warnings before the JSON document.
        j = json.loads(text[text.index("{"):])
        job = j["jobs"][0]
        if rc != 0 or job.get("error"):
            raise ValueError(f"exit {rc}, fio error {job.get('error')}")
        d = job["read"] if job["read"]["io_bytes"] else job["write"]
        pct = d["clat_ns"].get("percentile", {})
        secs = job["job_runtime"] / 1000.0
        base.update(status="ok", qd=int(job["job options"].get("iodepth", 1)),
                    bytes=d["io_bytes"], secs=secs, ops=d["total_ios"], ops_per_s=d["iops"],
                    mib_per_s=d["bw_bytes"] / 2**20,
                    p50_us=pct.get("50.000000", 0) / 1000, p99_us=pct.get("99.000000", 0) / 1000)
    except Exception as e:  # noqa: BLE001 - any failure becomes a result line
        base.update(status="timeout" if rc == 124 else "error", message=str(e)[:300])
    print(json.dumps(base))


def dd(path, args):
    base = kv(args)
    text = open(path).read()
    m = re.search(r"(\d+) bytes .*copied, ([0-9.]+) s", text)
    if not m:
        base.update(status="error", message=text[-200:])
    else:
        b, s = int(m.group(1)), float(m.group(2))
        base.update(kind="dd", status="ok", bytes=b, secs=s, mib_per_s=b / s / 2**20,
                    ops=b // 2**20, ops_per_s=b / 2**20 / s)
    print(json.dumps(base))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "progress":
        progress()
    elif cmd == "meta":
        r = {"record": "meta"}
        r.update(kv(args))
        print(json.dumps(r))
    elif cmd == "third-party":
        third_party(args)
    elif cmd == "fio":
        fio(args[0], args[1], args[2:])
    elif cmd == "dd":
        dd(args[0], args[1:])
    else:
        sys.exit(f"util.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
