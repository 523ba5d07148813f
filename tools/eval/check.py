#!/usr/bin/env python3
"""Checks `make eval`'s figures, for people and for the exit status.

    python3 tools/eval/check.py EVAL_DIR

1. The eval table (EVAL_DIR/table.json, from `cascade replay --table`) against
   the issue's reference figures (tools/eval/reference.json): every reference
   row within 1.5 points of pass rate and 5% of cost.
2. Our validators against the recorded outcomes: the single-model replays
   (EVAL_DIR/results/<model>_x1[.passNN].jsonl; pass p took run p) against
   each recording's "recorded_passed" (the official tests' outcome).
3. tune's held-out figures (EVAL_DIR/tune.json, from `cascade tune --summary`):
   pass rate >= the target, cost <= 10% of always the top model.

Exit status 1 when a check fails. Standard library only.
"""
import glob
import json
import os
import re
import sys

RATE_TOL = 0.015
COST_TOL = 0.05
TUNE_COST_SHARE = 0.10


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: check.py EVAL_DIR")
    d = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    ok = True

    table = {r["plan"]: r for r in json.load(open(os.path.join(d, "table.json")))}
    ref = json.load(open(os.path.join(here, "reference.json")))
    print("\neval: ours against the issue's reference (10 starting runs each)")
    print("  %-50s %-15s %-15s %-9s %-9s %s" % ("plan", "pass rate", "reference", "cost",
                                                 "reference", "verdict"))
    for r in ref:
        o = table.get(r["plan"])
        if not o:
            print("  %-50s missing from table.json" % r["plan"])
            ok = False
            continue
        dr = abs(o["pass_rate"] - r["pass_rate"])
        dc = abs(o["cost_usd"] - r["cost_usd"]) / r["cost_usd"]
        good = dr <= RATE_TOL + 1e-9 and dc <= COST_TOL
        ok &= good
        print("  %-50s %.3f ± %.3f  %.3f ± %.3f  $%-8.4f $%-8.3f %s (%+.1f pt, %+.1f%% cost)%s" % (
            r["plan"], o["pass_rate"], o["pass_rate_sd"], r["pass_rate"], r["pass_rate_sd"],
            o["cost_usd"], r["cost_usd"], "ok" if good else "OUT OF TOLERANCE",
            100 * (o["pass_rate"] - r["pass_rate"]),
            100 * (o["cost_usd"] - r["cost_usd"]) / r["cost_usd"],
            "  *" if o.get("tokens_estimated") else ""))
    if "oracle" in table:
        o = table["oracle"]
        print("  %-50s %.3f ± %.3f  %-13s  $%-8.4f (%.0f%% of always the top model)" % (
            "oracle", o["pass_rate"], o["pass_rate_sd"], "-", o["cost_usd"], 100 * o["vs_top"]))
    else:
        print("  oracle row missing")
        ok = False
    print("  * codellama's token counts are estimated (characters / 4); the reference "
          "estimates them too")

    # Agreement of our verdicts with the official outcome, record by record.
    recorded = {}
    with open(os.path.join(d, "recordings.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            recorded[(r["task"], r["model"], r["run"])] = r["recorded_passed"]
    agree = total = 0
    disagree = []
    for path in sorted(glob.glob(os.path.join(d, "results", "*_x1*.jsonl"))):
        m = re.match(r"(.*)_x1(?:\.pass(\d+))?\.jsonl$", os.path.basename(path))
        if not m or "--" in m.group(1) or ".esc" in path:
            continue
        model, run = m.group(1), int(m.group(2) or 1)
        with open(path) as f:
            for line in f:
                res = json.loads(line)
                ours = res["status"] == "accepted"
                want = recorded.get((res["id"], model, run))
                if want is None:
                    continue
                total += 1
                if ours == want:
                    agree += 1
                else:
                    v = res["attempts"][0].get("verdict", {}) if res["attempts"] else {}
                    disagree.append("%s %s run %d: recorded %s, ours %s (%s %s)" % (
                        res["id"], model, run, want, ours, v.get("validator"), v.get("reason")))
    print("\neval: our validators agree with the recorded official outcome on %d of %d "
          "records" % (agree, total))
    for line in disagree[:20]:
        print("  " + line)
    if total != len(recorded):
        print("  (expected %d records: some single-model pass files are missing)" % len(recorded))
        ok = False

    tpath = os.path.join(d, "tune.json")
    if os.path.exists(tpath):
        t = json.load(open(tpath))
        held, top = t["held"], t["top_held"]
        share = held["cost_usd"] / top["cost_usd"] if top["cost_usd"] else 1
        good = held["pass_rate"] + 1e-9 >= t["target"] and share <= TUNE_COST_SHARE
        ok &= good
        print("\neval: tune --target %.2f: %s; held-out half (%d tasks): pass rate %.3f, "
              "$%.4f = %.1f%% of always %s ($%.4f) -> %s" % (
                  t["target"], t["plan"], held["tasks"], held["pass_rate"], held["cost_usd"],
                  100 * share, t["top_model"], top["cost_usd"],
                  "ok" if good else "NOT MET (needs >= target and <= 10%)"))
    print("\neval: %s" % ("all checks pass" if ok else "SOME CHECKS FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
