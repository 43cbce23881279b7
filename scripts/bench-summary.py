#!/usr/bin/env python3
"""Summarises a criterion run as one JSON file and a compact table.

Usage: scripts/bench-summary.py OUT.json [--criterion-dir DIR] [--newer FILE]

Walks DIR/**/new/estimates.json (DIR defaults to target/criterion), takes each
benchmark's id from the benchmark.json next to it, and writes

    {"benchmarks": [{"id": "crypto::verify/single", "median_ns": ..., "mean_ns": ...,
                     "throughput": {"kind": "elements", "per_iteration": 1,
                                    "per_second": ...} or null}, ...]}

sorted by id. `per_second` is per_iteration at the median time. With --newer,
only benchmarks whose estimates were written after FILE's modification time
are included (criterion keeps results of renamed or removed benchmarks in
target/criterion; touch a marker file before the run and pass it here).
Numbers are reported, never gated: see BENCHMARKS.md.
"""

import argparse
import json
import os
import sys

KINDS = {"Bytes": "bytes", "BytesDecimal": "bytes", "Elements": "elements"}


def load(criterion_dir, newer_than):
    rows = []
    for root, _dirs, files in os.walk(criterion_dir):
        if os.path.basename(root) != "new" or "estimates.json" not in files:
            continue
        estimates_path = os.path.join(root, "estimates.json")
        if newer_than is not None and os.path.getmtime(estimates_path) <= newer_than:
            continue
        try:
            with open(os.path.join(root, "benchmark.json")) as f:
                bench = json.load(f)
            with open(estimates_path) as f:
                est = json.load(f)
        except (OSError, ValueError) as e:
            print(f"bench-summary: skipping {root}: {e}", file=sys.stderr)
            continue
        median = est["median"]["point_estimate"]
        throughput = None
        raw = bench.get("throughput")
        if raw:
            (kind, amount), = raw.items()
            throughput = {
                "kind": KINDS.get(kind, kind.lower()),
                "per_iteration": amount,
                "per_second": amount / (median * 1e-9) if median > 0 else None,
            }
        rows.append({
            "id": bench["full_id"],
            "median_ns": median,
            "mean_ns": est["mean"]["point_estimate"],
            "throughput": throughput,
        })
    rows.sort(key=lambda r: r["id"])
    return rows


def human_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def human_rate(t):
    if t is None or t["per_second"] is None:
        return ""
    v = t["per_second"]
    if t["kind"] == "bytes":
        for unit, scale in (("GiB/s", 2**30), ("MiB/s", 2**20), ("KiB/s", 2**10)):
            if v >= scale:
                return f"{v / scale:.3g} {unit}"
        return f"{v:.3g} B/s"
    for unit, scale in (("G/s", 1e9), ("M/s", 1e6), ("K/s", 1e3)):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v:.3g} /s"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="JSON file to write")
    p.add_argument("--criterion-dir", default="target/criterion")
    p.add_argument("--newer", metavar="FILE",
                   help="only benchmarks measured after FILE was last modified")
    args = p.parse_args()
    newer_than = os.path.getmtime(args.newer) if args.newer else None
    if not os.path.isdir(args.criterion_dir):
        sys.exit(f"bench-summary: {args.criterion_dir} does not exist (run cargo bench first)")
    rows = load(args.criterion_dir, newer_than)
    if not rows:
        sys.exit(f"bench-summary: no criterion results under {args.criterion_dir}")
    with open(args.out, "w") as f:
        json.dump({"benchmarks": rows}, f, indent=2)
        f.write("\n")
    width = max(len(r["id"]) for r in rows)
    print(f"{'benchmark'.ljust(width)}  {'median':>10}  {'mean':>10}  throughput")
    for r in rows:
        print(f"{r['id'].ljust(width)}  {human_time(r['median_ns']):>10}  "
              f"{human_time(r['mean_ns']):>10}  {human_rate(r['throughput'])}")
    print(f"bench-summary: {len(rows)} benchmarks -> {args.out}")


if __name__ == "__main__":
    main()
