#!/usr/bin/env python3
"""bench/lib/guard.py: the regression guard of `bench/run --quick`.

Compares a run's ratios to nfs-ganesha (rnfsd's median / ganesha's median, same run) with those of
the last committed full run (bench/results/results.json) and prints every workload whose ratio
fell by more than the threshold (15 % by default). Ratios, not raw figures: the machines here are
shared and noisy, and a ratio measured in one run cancels most of the noise both servers see.

    guard.py --baseline bench/results/results.json --current DIR/results.json [--threshold 0.15]
    guard.py --self-test

Exit status: 0 when nothing regressed, 3 when something did, 2 on unusable input.
"""
import argparse
import json
import sys

PEER = "ganesha"
SUBJECT = "rnfsd"


def ratios(results):
    """workload -> rnfsd/ganesha median ratio, for workloads both served without failure."""
    out = {}
    for workload, servers in results.get("medians", {}).items():
        a, b = servers.get(SUBJECT), servers.get(PEER)
        if not a or not b or a.get("status") != "ok" or b.get("status") != "ok":
            continue
        va, vb = a.get("value"), b.get("value")
        if not isinstance(va, (int, float)) or not isinstance(vb, (int, float)) or vb <= 0:
            continue
        out[workload] = va / vb
    return out


def compare(baseline, current, threshold):
    """(regressions, improvements, compared, missing) between two results documents.

    Every value of the medians is "higher is better" (MiB/s, operations/s), so a falling ratio
    is a loss. A workload the baseline has and the current run lacks is reported as missing."""
    base, cur = ratios(baseline), ratios(current)
    regressions, improvements, missing = [], [], []
    for workload in sorted(base):
        if workload not in cur:
            missing.append(workload)
            continue
        change = cur[workload] / base[workload] - 1.0
        row = (workload, base[workload], cur[workload], change)
        if change < -threshold:
            regressions.append(row)
        elif change > threshold:
            improvements.append(row)
    compared = len(base) - len(missing)
    return regressions, improvements, compared, missing


def report(regressions, improvements, compared, missing, threshold, baseline_meta):
    lines = [
        f"regression guard: {compared} workload(s) compared with the committed run of "
        f"{baseline_meta.get('date', '?')} (rnfsd {baseline_meta.get('rnfsd_rev', '?')}); "
        f"threshold {threshold:.0%} of the rnfsd/{PEER} ratio"
    ]
    for title, rows in (("LOST", regressions), ("gained", improvements)):
        for w, b, c, ch in rows:
            lines.append(f"  {title:6} {w:32} ratio {b:6.2f}x -> {c:6.2f}x ({ch:+.0%})")
    if missing:
        lines.append(f"  not measured this run (skipped, failed or filtered): {', '.join(missing)}")
    if not regressions:
        lines.append("  no workload lost more than the threshold")
    return "\n".join(lines)


def self_test():
    def doc(values):
        return {"meta": {"date": "d", "rnfsd_rev": "r"},
                "medians": {w: {SUBJECT: {"status": "ok", "value": a},
                                PEER: {"status": "ok", "value": b}}
                            for w, (a, b) in values.items()}}
    base = doc({"stat": (100, 100), "read": (200, 100), "write": (50, 100), "gone": (1, 1)})
    # stat: ratio 1.0 -> 0.8 (-20 %): lost. read: 2.0 -> 1.8 (-10 %): within. write: 0.5 -> 1.0.
    cur = doc({"stat": (80, 100), "read": (180, 100), "write": (100, 100)})
    cur["medians"]["failed"] = {SUBJECT: {"status": "error"}, PEER: {"status": "ok", "value": 1}}
    reg, imp, n, missing = compare(base, cur, 0.15)
    assert [r[0] for r in reg] == ["stat"], reg
    assert abs(reg[0][3] + 0.2) < 1e-9, reg
    assert [r[0] for r in imp] == ["write"], imp
    assert n == 3 and missing == ["gone"], (n, missing)
    # Raw figures that fall for both servers alike (a slower machine) are not a regression.
    slow = doc({"stat": (50, 50), "read": (100, 50), "write": (25, 50), "gone": (1, 1)})
    assert compare(base, slow, 0.15)[0] == []
    # A ganesha median of zero or a missing value is skipped, not divided by.
    odd = doc({"stat": (1, 0)})
    assert ratios(odd) == {}
    text = report(reg, imp, n, missing, 0.15, base["meta"])
    assert "LOST" in text and "stat" in text, text
    print("guard self-test: ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline")
    ap.add_argument("--current")
    ap.add_argument("--threshold", type=float, default=0.15)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return 0
    if not args.baseline or not args.current:
        ap.error("--baseline and --current are required")
    try:
        with open(args.baseline) as f:
            baseline = json.load(f)
        with open(args.current) as f:
            current = json.load(f)
    except (OSError, ValueError) as e:
        print(f"regression guard: cannot read results: {e}", file=sys.stderr)
        return 2
    reg, imp, n, missing = compare(baseline, current, args.threshold)
    print(report(reg, imp, n, missing, args.threshold, baseline.get("meta", {})))
    if n == 0:
        print("regression guard: nothing to compare (was nfs-ganesha in both runs?)", file=sys.stderr)
        return 2
    return 3 if reg else 0


if __name__ == "__main__":
    sys.exit(main())
