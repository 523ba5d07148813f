#!/usr/bin/env python3
"""`make eval`'s semantic start tier figures (README "Similar tasks start where
they succeeded"): the plain cascade against the same cascade with
"start": {"by": "similar"}, on HumanEval tasks it never saw.

    python3 tools/eval/similar.py CASCADE_BIN EVAL_DIR PLAN

The split keeps history and evaluation apart: tasks with an even HumanEval
number are history, odd ones are evaluated. Three replays (recorded answers,
real validators, one verdict cache):

1. learn: the similar-start cascade on the history tasks with a min_history
   no history reaches, so each runs the plain ladder and is recorded, with
   the tier that accepted it, in a journal;
2. plain: the plain cascade on the evaluation tasks;
3. similar: the similar-start cascade (k 10, min_history 50) on the
   evaluation tasks, reading the history from step 1's journal (read only:
   the evaluation tasks add nothing to it).

The recordings hold no embeddings, so replay computes the deterministic
hashed bag of words of lib/embed.h (256 numbers) for each prompt, priced as
text-embedding-3-small ($0.02 per million tokens, bytes / 4 tokens). Prints
pass rate and cost side by side, how many tasks started above the first tier
and how many of those a lower tier had passed in the plain run, and a verdict:
a saving, or "no saving on this data". Writes EVAL_DIR/similar/summary.json.
Standard library only; exit 1 when a replay fails.
"""
import json
import os
import subprocess
import sys

EMBED_MODEL = "embed-hash"
EMBED_PRICE = 0.02  # USD per million input tokens, as text-embedding-3-small
K, MIN_HISTORY = 10, 50
NAME = "humaneval-similar"


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


def replay(cbin, tasks, recs, cascade, models, out, vcache, extra=()):
    argv = [cbin, "replay", "--tasks", tasks, "--recordings", recs, "--cascade", cascade,
            "--models", models, "-o", out, "--sandboxes", "2", "--verdict-cache", vcache,
            "-q"] + list(extra)
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        sys.exit("similar: replay of %s failed (exit %d)" % (cascade, r.returncode))


def figures(rows):
    n = len(rows)
    passed = sum(1 for r in rows if r["status"] == "accepted")
    cost = sum(r.get("cost_usd") or 0 for r in rows)
    return n, passed / n if n else 0, cost


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: similar.py CASCADE_BIN EVAL_DIR PLAN")
    cbin, d, plan = sys.argv[1:]
    out = os.path.join(d, "similar")
    os.makedirs(os.path.join(out, "learn"), exist_ok=True)
    os.makedirs(os.path.join(out, "eval"), exist_ok=True)
    for f in ("history.journal", "history.journal-wal", "history.journal-shm"):
        if os.path.exists(os.path.join(out, f)):
            os.remove(os.path.join(out, f))

    tasks = load_jsonl(os.path.join(d, "tasks.jsonl"))
    hist, ev = [], []
    for t in tasks:
        (hist if int(t["id"].split("/")[1]) % 2 == 0 else ev).append(t)
    for name, part in (("history", hist), ("eval", ev)):
        with open(os.path.join(out, name + ".jsonl"), "w") as f:
            for t in part:
                f.write(json.dumps(t) + "\n")

    models = json.load(open(os.path.join(d, "cascades", "models.json")))
    models["models"][EMBED_MODEL] = {"provider": next(iter(models["providers"])),
                                     "id": EMBED_MODEL, "input_usd_per_mtok": EMBED_PRICE,
                                     "output_usd_per_mtok": 0}
    models["embeddings"] = {"model": EMBED_MODEL}
    mpath = os.path.join(out, "models.json")
    write_json(mpath, models)
    base = json.load(open(os.path.join(d, "cascades", plan + ".json")))
    base["name"] = NAME
    plain = dict(base)
    write_json(os.path.join(out, "plain.json"), plain)
    # The same name in both: the history is kept per cascade name.
    learn = dict(base, start={"by": "similar", "k": K, "min_history": 10000000})
    write_json(os.path.join(out, "learn", NAME + ".json"), learn)
    sim = dict(base, start={"by": "similar", "k": K, "min_history": MIN_HISTORY})
    write_json(os.path.join(out, "eval", NAME + ".json"), sim)

    recs = os.path.join(d, "recordings.jsonl")
    vc = os.path.join(out, "verdicts.jsonl")
    journal = os.path.join(out, "history.journal")
    replay(cbin, os.path.join(out, "history.jsonl"), recs, os.path.join(out, "learn", NAME + ".json"),
           mpath, os.path.join(out, "learn.jsonl"), vc, ["--journal", journal])
    replay(cbin, os.path.join(out, "eval.jsonl"), recs, os.path.join(out, "plain.json"), mpath,
           os.path.join(out, "plain.jsonl"), vc)
    replay(cbin, os.path.join(out, "eval.jsonl"), recs, os.path.join(out, "eval", NAME + ".json"),
           mpath, os.path.join(out, "similar.jsonl"), vc, ["--history-from", journal])

    learn_rows = load_jsonl(os.path.join(out, "learn.jsonl"))
    plain_rows = load_jsonl(os.path.join(out, "plain.jsonl"))
    sim_rows = load_jsonl(os.path.join(out, "similar.jsonl"))
    n, p_rate, p_cost = figures(plain_rows)
    _, s_rate, s_cost = figures(sim_rows)
    embed_cost = sum((r.get("start") or {}).get("cost_usd", 0) for r in sim_rows)
    plain_by_id = {r["id"]: r for r in plain_rows}
    raised = [r for r in sim_rows if isinstance((r.get("start") or {}).get("tier"), int)
              and r["start"]["tier"] > 0]
    # A raised start was a miss when the plain run had a lower tier accept the task.
    missed = [r for r in raised if plain_by_id[r["id"]]["status"] == "accepted"
              and plain_by_id[r["id"]]["tier"] < r["start"]["tier"]]
    hist_tiers = {}
    for r in learn_rows:
        k = r["tier"] if r["status"] == "accepted" else "none"
        hist_tiers[k] = hist_tiers.get(k, 0) + 1

    print("\neval: semantic start tier on HumanEval (plan %s, k %d, min_history %d)" %
          (plan, K, MIN_HISTORY))
    print("  split: %d history tasks (even numbers; accepted at tier: %s), %d evaluated (odd)" %
          (len(hist), ", ".join("%s %d" % (k, v) for k, v in sorted(hist_tiers.items(),
                                                                    key=lambda x: str(x[0]))),
           n))
    print("  embeddings: hashed bag of words (lib/embed.h; the recordings hold none), priced at "
          "$%.2f/Mtok" % EMBED_PRICE)
    print("  %-22s %-10s %-12s %s" % ("", "pass rate", "cost", "started above tier 0"))
    print("  %-22s %-10.3f $%-11.4f %s" % ("plain cascade", p_rate, p_cost, "-"))
    print("  %-22s %-10.3f $%-11.4f %d (a lower tier had passed %d of them in the plain run)" %
          ("similar start", s_rate, s_cost, len(raised), len(missed)))
    print("  of which embeddings   %-10s $%-11.6f" % ("", embed_cost))
    saving = p_cost - s_cost
    if saving > 0.005 * p_cost and s_rate >= p_rate - 0.005:
        verdict = "a saving: $%.4f (%.1f%%) at pass rate %+.3f" % (saving, 100 * saving / p_cost,
                                                                 s_rate - p_rate)
    elif saving > 0:
        verdict = ("no saving on this data: $%.4f cheaper (%.1f%%) but pass rate %+.3f" %
                   (saving, 100 * saving / p_cost, s_rate - p_rate))
    else:
        verdict = "no saving on this data: $%.4f dearer, pass rate %+.3f" % (-saving,
                                                                           s_rate - p_rate)
    print("  verdict: " + verdict)
    write_json(os.path.join(out, "summary.json"), {
        "plan": plan, "k": K, "min_history": MIN_HISTORY, "history_tasks": len(hist),
        "eval_tasks": n, "plain": {"pass_rate": p_rate, "cost_usd": p_cost},
        "similar": {"pass_rate": s_rate, "cost_usd": s_cost, "embedding_cost_usd": embed_cost,
                    "started_above_first": len(raised), "lower_tier_had_passed": len(missed)},
        "verdict": verdict})


if __name__ == "__main__":
    main()
