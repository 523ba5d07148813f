#!/usr/bin/env python3
"""Compares two results files task by task: status, accepting tier and cost.

    python3 tools/eval/compare.py A.jsonl B.jsonl

Used by `make eval` to check that `cascade run` against mock-llm over HTTP
gives what `cascade replay` gave offline. Exit status 1 on any difference.
Standard library only.
"""
import json
import sys


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                out[r["id"]] = r
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: compare.py A.jsonl B.jsonl")
    a, b = load(sys.argv[1]), load(sys.argv[2])
    diffs = []
    for tid in sorted(set(a) | set(b)):
        x, y = a.get(tid), b.get(tid)
        if not x or not y:
            diffs.append("%s: only in %s" % (tid, sys.argv[1] if x else sys.argv[2]))
            continue
        for key in ("status", "tier", "model"):
            if x.get(key) != y.get(key):
                diffs.append("%s: %s %r vs %r" % (tid, key, x.get(key), y.get(key)))
        if abs(x.get("cost_usd", 0) - y.get("cost_usd", 0)) > 1e-9:
            diffs.append("%s: cost %r vs %r" % (tid, x.get("cost_usd"), y.get("cost_usd")))
        if len(x.get("attempts", [])) != len(y.get("attempts", [])):
            diffs.append("%s: %d vs %d attempts" % (tid, len(x["attempts"]), len(y["attempts"])))
    cost_a = sum(r.get("cost_usd", 0) for r in a.values())
    cost_b = sum(r.get("cost_usd", 0) for r in b.values())
    acc_a = sum(r["status"] == "accepted" for r in a.values())
    acc_b = sum(r["status"] == "accepted" for r in b.values())
    print("eval: HTTP cross-check: %d tasks; accepted %d vs %d; cost $%.6f vs $%.6f; "
          "%d differences" % (len(set(a) | set(b)), acc_a, acc_b, cost_a, cost_b, len(diffs)))
    for d in diffs[:20]:
        print("  " + d)
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
