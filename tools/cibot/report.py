#!/usr/bin/env python3
"""Gathers what `make eval-cibot` measured into OUT/table.json and a printed
table, and checks it.

Reads (all under OUT, written by load.py, cascade replay and
validate_fixes.py): the replay's results and escalations per plan
(results/<plan>.jsonl, results/<plan>.esc.jsonl) and its table
(replay-table.json), our verdict on every recorded fix
(fixes.verdicts.jsonl), the flaky check's results (flaky/results.jsonl), and
the models file for the prices.

Every fix on which our verdict and the recorded outcome disagree must match
one of the explanations below (each written from what was measured: see
README.md, "make eval-cibot"); one that matches none is listed as
unexplained. Exit 1 when a disagreement is unexplained, when the flaky logic
flags a test as flaky in a run the data says was stable, or when a baseline
does not fail where the recorded outcome says the tests fail.
"""
import argparse
import json
import os
import sys


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


# (name, test on a verdicts row, explanation). The first that matches names
# the cause of a disagreement.
EXPLANATIONS = [
    ("fence_before_diff",
     lambda r: r["passes"] and r["verdict"].get("reason") in ("bad_diff", "empty_patch")
     and r.get("raw_output"),
     "a raw chat answer whose patch our extraction did not find (its prose and fenced "
     "Python come first): measured on 53 QuixBugs fixes when extraction took the first "
     "fenced block; the diff-tagged fence is now taken first"),
]


def explain(row):
    for name, test, text in EXPLANATIONS:
        try:
            if test(row):
                return name, text
        except (KeyError, TypeError):
            continue
    return None, None


def plan_figures(out, table, models):
    rows = []
    for t in table:
        plan = t["plan"]
        res = read_jsonl(os.path.join(out, "results", plan + ".jsonl"))
        esc = read_jsonl(os.path.join(out, "results", plan + ".esc.jsonl"))
        casc = None
        per_tier = {}
        flaky = 0
        for r in res:
            casc = casc or r.get("cascade")
            if r.get("status") == "accepted":
                key = "%d %s" % (r["tier"], r["model"])
                per_tier[key] = per_tier.get(key, 0) + 1
            flaky += (r.get("tests") or {}).get("flaky", 0) or 0
        rows.append({
            "plan": plan,
            "pass_rate": t["pass_rate"], "pass_rate_sd": t.get("pass_rate_sd", 0),
            "cost_usd": t["cost_usd"], "vs_top": t.get("vs_top"),
            "runs": t.get("runs"), "tasks": t.get("tasks"),
            "tokens_estimated": t.get("tokens_estimated", False),
            "climbs": len(esc),
            "accepted_per_tier": per_tier,
            "flaky_at_base": flaky,
            "statuses": sorted({r.get("status") for r in res}),
        })
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--models", required=True)
    ap.add_argument("--cascades", required=True, help="the directory of the plans' cascade files")
    a = ap.parse_args()
    out = a.out
    status = 0

    with open(a.models, encoding="utf-8") as f:
        models = json.load(f)["models"]
    with open(os.path.join(out, "replay-table.json"), encoding="utf-8") as f:
        table = json.load(f)
    fixes = read_jsonl(os.path.join(out, "fixes.jsonl"))
    tasks = read_jsonl(os.path.join(out, "tasks.jsonl"))
    plans = plan_figures(out, table, models)
    tiers = {}
    for fn in sorted(os.listdir(a.cascades)):
        if fn.endswith(".json"):
            with open(os.path.join(a.cascades, fn), encoding="utf-8") as f:
                c = json.load(f)
            tiers[c["name"]] = [(t["model"], t.get("attempts", 1)) for t in c["tiers"]]
    for p in plans:
        p["tiers"] = ["%s x%d" % t for t in tiers.get(p["plan"], [])]

    # Agreement of our verdicts with the recorded outcome.
    meta = {x["index"]: x for x in fixes}
    verdicts = read_jsonl(os.path.join(out, "fixes.verdicts.jsonl"))
    agree = sum(1 for r in verdicts if r["agree"])
    dis, unexplained, causes = [], 0, {}
    by_reason = {}
    for r in verdicts:
        v = r["verdict"]
        key = "pass" if v.get("pass") else "%s: %s" % (v.get("validator"), v.get("reason"))
        by_reason[key] = by_reason.get(key, 0) + 1
        if r["agree"]:
            continue
        r["raw_output"] = meta.get(r["index"], {}).get("raw_output", False)
        name, text = explain(r)
        if not name:
            unexplained += 1
        causes[name or "unexplained"] = causes.get(name or "unexplained", 0) + 1
        dis.append({"index": r["index"], "task": r["task"], "model": r["model"],
                    "sample": r["sample"], "recorded": r["passes"], "ours": r["ours"],
                    "validator": v.get("validator"), "reason": v.get("reason"),
                    "message": (v.get("message") or "")[:300],
                    "cause": name or "unexplained", "explanation": text})
    dis.sort(key=lambda d: d["index"])
    agreement = {
        "fixes": len(verdicts), "agree": agree, "disagree": len(verdicts) - agree,
        "recorded_pass": sum(1 for r in verdicts if r["passes"]),
        "ours_pass": sum(1 for r in verdicts if r["ours"]),
        "verdicts": dict(sorted(by_reason.items(), key=lambda kv: -kv[1])),
        "causes": causes, "unexplained": unexplained,
        "explanations": {n: t for n, _, t in EXPLANATIONS if n in causes},
        "disagreements": dis,
    }
    if unexplained:
        status = 1
    if len(verdicts) != len(fixes):
        status = 1

    # The flaky check: recorded fixes that fail, as bases.
    fres = read_jsonl(os.path.join(out, "flaky", "results.jsonl"))
    ftasks = {t["id"]: t for t in read_jsonl(os.path.join(out, "flaky", "tasks.jsonl"))}
    flagged, not_failing, runs = [], [], 0
    for r in fres:
        t = r.get("tests") or {}
        runs += t.get("baseline_runs", 0) or 0
        if t.get("flaky", 0) or t.get("flaky_tests"):
            flagged.append({"task": r["id"], "flaky_tests": t.get("flaky_tests")})
        if r.get("status") == "nothing_to_fix" or t.get("baseline_runs", 0) != 2:
            not_failing.append({"task": r["id"], "status": r.get("status"),
                                "reason": r.get("reason")})
    flaky = {
        "bases": len(ftasks), "results": len(fres), "baseline_runs": runs,
        "flaky_flagged": len(flagged), "flagged": flagged,
        "not_failing_at_base": not_failing,
        "buggy_bases_flaky": sum(p["flaky_at_base"] for p in plans),
    }
    if flagged or not_failing or len(fres) != len(ftasks) or flaky["buggy_bases_flaky"]:
        status = 1

    used = sorted({m for p in plans for m, _ in tiers.get(p["plan"], []) if m in models},
                  key=lambda m: (models[m]["output_usd_per_mtok"], m))
    result = {
        "programs": len(tasks), "fixes": len(fixes),
        "prices_usd_per_mtok": {m: [models[m]["input_usd_per_mtok"],
                                    models[m]["output_usd_per_mtok"]] for m in used},
        "plans": plans, "agreement": agreement, "flaky_check": flaky,
        "ok": status == 0,
    }
    with open(os.path.join(out, "table.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")

    est = any(p["tokens_estimated"] for p in plans)
    print("\n%d programs, %d recorded fixes; cascades replayed on the recorded fixes" %
          (len(tasks), len(fixes)))
    print("prices (USD per million input/output tokens): " + ", ".join(
        "%s %g/%g" % (m, *result["prices_usd_per_mtok"][m]) for m in used))
    print("%-76s %9s %12s %7s %7s  %s" % ("plan", "pass rate", "cost (USD)", "vs top", "climbs",
                                          "accepted per tier"))
    for p in plans:
        print("%-76s %9.3f %11.4f%s %7s %7d  %s" % (
            (p["plan"] + ": " + " > ".join(p["tiers"]))[:76], p["pass_rate"], p["cost_usd"], "*" if p["tokens_estimated"] else " ",
            "%.3f" % p["vs_top"] if p["vs_top"] is not None else "-", p["climbs"],
            ", ".join("%s: %d" % kv for kv in sorted(p["accepted_per_tier"].items()))))
    if est:
        print("* token counts estimated (characters / 4), the sources kept no usage")
    print("\nour verdicts against the recorded outcome: %d of %d fixes agree "
          "(recorded pass %d, ours %d)" % (agree, len(verdicts), agreement["recorded_pass"],
                                            agreement["ours_pass"]))
    for k, n in agreement["verdicts"].items():
        print("  %-40s %4d" % (k, n))
    for name, n in sorted(causes.items()):
        print("  disagree, %-30s %4d  %s" % (name, n, agreement["explanations"].get(name, "")))
    for d in dis:
        if d["cause"] == "unexplained":
            print("  UNEXPLAINED fix %d %s %s #%d: recorded %s, ours %s (%s: %s) %s" % (
                d["index"], d["task"], d["model"], d["sample"], d["recorded"], d["ours"],
                d["validator"], d["reason"], d["message"][:160]))
    print("\nflaky check: %d failing fixes as bases, %d baseline runs, %d flagged flaky, "
          "%d not failing at base; flaky at the buggy bases: %d" % (
              flaky["bases"], runs, len(flagged), len(not_failing), flaky["buggy_bases_flaky"]))
    for x in flagged + not_failing:
        print("  %s" % json.dumps(x))
    print("\n%s/table.json: %s" % (out, "all checks pass" if status == 0 else "SOME CHECKS FAILED"))
    return status


if __name__ == "__main__":
    sys.exit(main())
