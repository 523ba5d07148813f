#!/usr/bin/env python3
"""Checks and sums up the NLBSE run of `make eval-classify` (SYNTHETIC answers).

    python3 tools/classify/tickets_check.py OUT_DIR SECONDS

Reads OUT_DIR/{tasks,results,escalations}.jsonl and standins.json (written by
tickets.py and `cascade run`), writes OUT_DIR/summary.json, marks the HTML
report as synthetic, and prints the figures. Fails (exit 1) unless every issue
has its result line, none ended in error, every tier accepted some labels,
the climbs include each signal of doubt the cascade has (disagreement,
low_confidence and no_label), and labels were read from at least four answer
shapes.

Standard library only.
"""
import collections
import json
import os
import re
import sys

BANNER = ('<p style="background:#fee;border:2px solid #c00;padding:8px;font-weight:bold">'
          'SYNTHETIC: the answers in this report are from deterministic rule-based stand-ins '
          '(tools/classify/tickets.py), right on fractions set by construction; they are not '
          'model answers. The issues are real (NLBSE\'24).</p>')


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def label_of(r):
    """The label a result accepted: the result's own, else its last attempt's verdict's."""
    if isinstance(r.get("label"), str):
        return r["label"]
    for a in reversed(r.get("attempts") or []):
        v = a.get("verdict") or {}
        if v.get("pass") and isinstance(v.get("label"), str):
            return v["label"]
    return None


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tickets_check.py OUT_DIR SECONDS")
    d, secs = sys.argv[1], float(sys.argv[2])
    stand = json.load(open(os.path.join(d, "standins.json")))
    tasks = {t["id"]: t for t in jsonl(os.path.join(d, "tasks.jsonl"))}
    results = jsonl(os.path.join(d, "results.jsonl"))
    escs = jsonl(os.path.join(d, "escalations.jsonl"))
    problems = []

    by_id = {r["id"]: r for r in results}
    missing = [t for t in tasks if t not in by_id]
    if missing:
        problems.append("%d issues have no result line (first %s)" % (len(missing), missing[0]))
    status = collections.Counter(r["status"] for r in results)
    if status.get("error") or status.get("invalid_task"):
        problems.append("statuses %s" % dict(status))

    tiers = collections.defaultdict(lambda: [0, 0])  # tier -> [accepted, right]
    right = accepted = 0
    calls = cost = 0.0
    for r in results:
        calls += len(r.get("attempts") or [])
        cost += r.get("cost_usd") or 0.0
        if r["status"] != "accepted":
            continue
        lab = label_of(r)
        ok = lab == tasks[r["id"]]["gold"]
        accepted += 1
        right += ok
        tiers[r["tier"]][0] += 1
        tiers[r["tier"]][1] += ok
    # What the label validator read the labels from (its evidence: "... read from a X").
    shapes = collections.Counter()
    for r in results:
        for a in r.get("attempts") or []:
            m = re.search(r"read from (.*)", (a.get("verdict") or {}).get("evidence") or "")
            if m:
                shapes[m.group(1)] += 1
    if len(shapes) < 4:
        problems.append("labels read from only %d shapes: %s" % (len(shapes), dict(shapes)))
    reasons = collections.Counter("%s: %s" % (e.get("validator"), e.get("reason")) for e in escs)
    for want in ("disagreement", "low_confidence", "no_label"):
        if not any(k.endswith(": " + want) for k in reasons):
            problems.append("no climb for %s (reasons: %s)" % (want, dict(reasons)))
    for t in range(3):
        if tiers[t][0] == 0:
            problems.append("tier %d accepted no label" % t)

    n = len(tasks)
    summary = {
        "synthetic": stand["synthetic"], "issues": n, "seconds": secs,
        "statuses": dict(status), "accuracy": right / n if n else 0.0,
        "accuracy_of_accepted": right / accepted if accepted else 0.0,
        "cost_usd": round(cost, 6), "calls": int(calls),
        "per_tier": {str(t): {"accepted": a, "right": ok, "accuracy": ok / a if a else 0.0}
                     for t, (a, ok) in sorted(tiers.items())},
        "climbs": dict(reasons), "labels_read_from": dict(shapes),
        "standins": {m: s["fraction_right"] for m, s in stand["standins"].items()},
        "problems": problems,
    }
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    html = os.path.join(d, "report.html")
    if os.path.exists(html):
        with open(html, encoding="utf-8") as f:
            page = f.read()
        if "SYNTHETIC" not in page:
            at = page.find("<body>")
            page = page[:at + 6] + BANNER + page[at + 6:] if at >= 0 else BANNER + page
            with open(html, "w", encoding="utf-8") as f:
                f.write(page)

    print("NLBSE issues (SYNTHETIC answers: rule-based stand-ins right on %s):" %
          ", ".join("%s %.2f" % (m, p) for m, p in summary["standins"].items()))
    print("  %d issues in %.2f s; statuses %s; %d calls, $%.4f (made-up prices)" %
          (n, secs, dict(status), calls, cost))
    print("  accuracy %.3f of all issues (%.3f of the %d accepted)" %
          (summary["accuracy"], summary["accuracy_of_accepted"], accepted))
    for t, s in summary["per_tier"].items():
        print("  tier %s accepted %4d, right %4d (%.3f)" % (t, s["accepted"], s["right"],
                                                           s["accuracy"]))
    for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print("  climb %-28s %4d" % (k, v))
    print("  labels read from: %s" % ", ".join("%s %d" % kv for kv in shapes.most_common()))
    for p in problems:
        print("eval-classify: tickets: %s" % p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
