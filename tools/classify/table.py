#!/usr/bin/env python3
"""The table of `make eval-classify`, from the replays' and tune's own output.

    python3 tools/classify/table.py target SET/table.json
        prints always gpt-4's accuracy minus one point: tune's target
    python3 tools/classify/table.py budget SET/table.json
        prints 30% of always gpt-4's cost per question: the second tune's budget
    python3 tools/classify/table.py join SET/table.json PART.json...
        joins the tables of replay's parts (at most 64 cascades a call)
    python3 tools/classify/table.py table OUT_DIR
        reads OUT_DIR/{arc,wino}/table.json (cascade replay --table),
        OUT_DIR/{arc,wino}/tune.json (cascade tune --summary) and the replays'
        result files; writes OUT_DIR/table.json and prints, per data set, each
        single model, the format-only chain, the best agreement plans and
        tune's plan on the held-out half beside always gpt-4 there; then the
        ARC target check. Exit 1 when a file is missing or malformed (not
        when the target is missed: that is a finding, printed).

Every figure printed here is read from a file the cascade commands wrote;
this script only selects rows and divides costs.

Standard library only.
"""
import json
import os
import re
import sys

TOP = "gpt-4*1"
SETS = [("arc", "ARC-Challenge"), ("wino", "Winogrande")]
TARGET_POINTS = 0.01  # accuracy within one point of always gpt-4
TARGET_COST = 0.30  # at no more than 30% of its cost
BEST_AGREE = 5  # agreement plans shown per data set (the Pareto front's best)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("eval-classify: cannot read %s: %s" % (path, e))


def acc(row):
    """A row's accuracy: replay's `accuracy`; tune --metric accuracy calls it pass_rate."""
    v = row.get("accuracy", row.get("pass_rate") if row.get("metric") == "accuracy" else None)
    if not isinstance(v, (int, float)):
        sys.exit("eval-classify: a row has no accuracy (does replay know the gold?): %s" %
                 json.dumps(row)[:200])
    return float(v)


def top_row(rows):
    for r in rows:
        if r["plan"] == TOP:
            return r
    sys.exit("eval-classify: the replay table has no %s row" % TOP)


def kind(row):
    p = row["plan"]
    if p.startswith("format-only"):
        return "format-only"
    if "+" in p:
        return "agreement"
    if p.endswith("*1") and ">" not in p:
        return "single"
    return "other"


def pareto(rows):
    """Rows no other row beats on both accuracy and cost, by accuracy, best first."""
    front = []
    for r in sorted(rows, key=lambda r: (r["cost_usd"], -acc(r))):
        if not front or acc(r) > acc(front[-1]):
            front.append(r)
    return sorted(front, key=lambda r: -acc(r))


def label_of(r):
    """The label a result accepted: the result's own, else its last passing verdict's."""
    if isinstance(r.get("label"), str):
        return r["label"]
    for a in reversed(r.get("attempts") or []):
        v = a.get("verdict") or {}
        if v.get("pass") and isinstance(v.get("label"), str):
            return v["label"]
    return None


def stem(plan):
    """replay's file_stem: * -> _x, > -> --, anything but [A-Za-z0-9._-] -> _."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", plan.replace("*", "_x").replace(">", "--"))


def anatomy(d, plan):
    """Where a two-tier plan's errors and money go, from its replay's result file;
    beside them, gpt-4's own errors on the questions the cheap tier accepted."""
    path = os.path.join(d, "results", stem(plan) + ".jsonl")
    top_right = {}
    with open(os.path.join(d, "results", stem(TOP) + ".jsonl")) as f:
        for line in f:
            r = json.loads(line)
            top_right[r["id"]] = r.get("correct") is True
    gold = {}
    with open(os.path.join(d, "tasks.jsonl")) as f:
        for line in f:
            t = json.loads(line)
            gold[t["id"]] = t.get("gold")
    acc0 = wrong0 = top_wrong0 = climbed = 0
    cost0 = cost1 = 0.0
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            for a in r.get("attempts") or []:
                if a.get("tier") == 0:
                    cost0 += a.get("cost_usd") or 0.0
                else:
                    cost1 += a.get("cost_usd") or 0.0
            if r.get("status") == "accepted" and r.get("tier") == 0:
                acc0 += 1
                wrong0 += r.get("correct") is False or label_of(r) != gold.get(r["id"])
                top_wrong0 += not top_right.get(r["id"])
            else:
                climbed += 1
    return {"tier0_accepted": acc0, "tier0_wrong": wrong0, "gpt4_wrong_there": top_wrong0,
            "climbed": climbed,
            "tier0_cost_usd": cost0, "climb_cost_usd": cost1}


def fmt_row(name, a, cost, top_cost, n, flag=""):
    return "  %-52s %5d  %.3f  $%8.4f%s  %6.1f%%" % (
        name[:52], n, a, cost, flag, 100.0 * cost / top_cost if top_cost else 0.0)


def set_table(out, key, title):
    d = os.path.join(out, key)
    rows = load(os.path.join(d, "table.json"))
    top = top_row(rows)
    for r in rows:
        r["kind"] = kind(r)
        r["vs_gpt4"] = r["cost_usd"] / top["cost_usd"] if top["cost_usd"] else None
    singles = sorted([r for r in rows if r["kind"] == "single"], key=lambda r: r["cost_usd"])
    fmt = [r for r in rows if r["kind"] == "format-only"]
    agree = [r for r in rows if r["kind"] == "agreement"]
    floor = acc(top) - TARGET_POINTS
    # Always gpt-4 joins the front so that plans it beats on both counts drop out.
    best = [r for r in pareto(agree + [top]) if r is not top][:BEST_AGREE]
    within = sorted([r for r in agree if acc(r) >= floor - 1e-9], key=lambda r: r["cost_usd"])
    cheap = sorted([r for r in agree if r["vs_gpt4"] <= TARGET_COST],
                   key=lambda r: (-acc(r), r["cost_usd"]))
    picks = {"cheapest_within_one_point": within[0]["plan"] if within else None,
             "most_accurate_within_30pct": cheap[0]["plan"] if cheap else None}
    for p in picks.values():
        if p and all(r["plan"] != p for r in best):
            best += [r for r in agree if r["plan"] == p]
    res_why = {}
    for what, p in picks.items():
        if p:
            res_why[what] = dict(anatomy(d, p), plan=p)
    tunes = {}
    for t in ("tune", "tune30", "tune0"):
        path = os.path.join(d, t + ".json")
        if os.path.exists(path):
            tunes[t] = load(path)
            for half in ("fit", "held", "top_fit", "top_held"):
                tunes[t][half]["metric"] = tunes[t].get("metric")
    # What the HTML report shows: always gpt-4, the format-only chain, the
    # picks and tune's plans (replayed on every question).
    report = [TOP] + [r["plan"] for r in fmt] + [p for p in picks.values() if p]
    with open(os.path.join(d, "report-files.txt"), "w") as f:
        for p in report:
            f.write(os.path.join(d, "results", stem(p) + ".jsonl") + "\n")
        for t in ("tuned", "tuned30"):
            p = os.path.join(d, "results", "%s-%s.jsonl" % (t, key))
            if os.path.exists(p):
                f.write(p + "\n")

    # The report's chart gets the rows printed here, not all 152 plans.
    with open(os.path.join(d, "table-shown.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k not in ("kind", "vs_gpt4")}
                   for r in singles + fmt + best], f, indent=1)
        f.write("\n")

    print("%s: %d questions with gold; always gpt-4 %.3f at $%.4f" %
          (title, top["tasks"], acc(top), top["cost_usd"]))
    print("  %-52s %5s  %5s  %9s  %7s" % ("plan", "n", "acc", "cost", "vs gpt-4"))
    for r in singles + fmt + best:
        flag = "*" if r.get("cost_recorded") or r.get("costs_recorded") else " "
        print(fmt_row(("[%s] " % r["kind"][:6]) + r["plan"], acc(r), r["cost_usd"],
                      top["cost_usd"], r["tasks"], flag))
    res = {"title": title, "tasks": top["tasks"], "gpt4": {"accuracy": acc(top),
                                                            "cost_usd": top["cost_usd"]},
           "singles": singles, "format_only": fmt, "best_agreement": best,
           "agreement_plans": len(agree), "picks": res_why}
    res["tune"] = {}
    for t, what in (("tune", "tune --metric accuracy, target %.4f"),
                    ("tune30", "tune, target %.4f within 30%% of gpt-4's cost"),
                    ("tune0", "tune, target %.4f with no margin and no budget")):
        if t not in tunes:
            continue
        j = tunes[t]
        held, top_held = j["held"], j["top_held"]
        print("  " + what % j["target"] + ", on the fit half (%d): %s%s" %
              (j["fit"]["tasks"], j["plan"],
               "" if j.get("met") else "  [target not reached: tune's most accurate plan]"))
        print(fmt_row("  held-out half: that plan", acc(held), held["cost_usd"],
                      top_held["cost_usd"], held["tasks"]))
        print(fmt_row("  held-out half: always gpt-4", acc(top_held), top_held["cost_usd"],
                      top_held["cost_usd"], top_held["tasks"]))
        res["tune"][t] = {"plan": j["plan"], "target": j["target"], "met": j.get("met"),
                          "description": j.get("description"), "fit": j["fit"],
                          "held": held, "top_held": top_held}
    for what, a in res_why.items():
        print("  %s (all questions): %s: the cheap tier accepted %d, %d of them wrong (the "
              "models agreed on a wrong letter; gpt-4 is wrong on %d of those %d), %d climbed "
              "to gpt-4; the cheap tier cost %.1f%% of always gpt-4, the climbs %.1f%%" %
              (what.replace("_", " ").replace("30pct", "30%"), a["plan"], a["tier0_accepted"],
               a["tier0_wrong"], a["gpt4_wrong_there"], a["tier0_accepted"], a["climbed"],
                                     100 * a["tier0_cost_usd"] / top["cost_usd"],
                                     100 * a["climb_cost_usd"] / top["cost_usd"]))
    print()
    return res


def target_check(res):
    """The issue's ARC target on tune's held-out halves; the figures when missed."""
    out = {"met": False, "plans": {}}
    for t, j in res.get("tune", {}).items():
        held, top = j["held"], j["top_held"]
        pct = held["cost_usd"] / top["cost_usd"] if top["cost_usd"] else float("inf")
        gap = acc(held) - acc(top)
        met = gap >= -TARGET_POINTS - 1e-9 and pct <= TARGET_COST
        out["plans"][t] = {"plan": j["plan"], "met": met, "held_accuracy": acc(held),
                           "gpt4_held_accuracy": acc(top), "points": 100 * gap,
                           "cost_fraction": pct, "held_tasks": held["tasks"]}
        out["met"] = out["met"] or met
        print("ARC target (held-out accuracy >= always gpt-4's minus 1 point, at <= 30%% of "
              "its cost), %s's plan %s: %.3f vs %.3f (%+.1f points, %d questions) at %.1f%% "
              "of the cost: %s" % (t, j["plan"], acc(held), acc(top), 100 * gap, held["tasks"],
                                   100 * pct, "MET" if met else "NOT MET"))
    if not out["plans"]:
        print("ARC target: no tune summary")
    return out


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "join":
        rows = []
        for p in sys.argv[3:]:
            rows += load(p)
        with open(sys.argv[2], "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")
        return
    if len(sys.argv) != 3 or sys.argv[1] not in ("target", "budget", "table"):
        sys.exit("usage: table.py target|budget SET/table.json | table.py table OUT_DIR | "
                 "table.py join OUT.json PART.json...")
    if sys.argv[1] == "target":
        top = top_row(load(sys.argv[2]))
        print("%.4f" % (acc(top) - TARGET_POINTS))
        return
    if sys.argv[1] == "budget":
        top = top_row(load(sys.argv[2]))
        print("%.8f" % (TARGET_COST * top["cost_usd"] / top["tasks"]))
        return
    out = sys.argv[2]
    table = {}
    for key, title in SETS:
        table[key] = set_table(out, key, title)
    table["arc"]["target"] = target_check(table["arc"])
    with open(os.path.join(out, "table.json"), "w") as f:
        json.dump(table, f, indent=1)
        f.write("\n")
    print("eval-classify: %s" % os.path.join(out, "table.json"))


if __name__ == "__main__":
    main()
