#!/bin/sh
# make eval, step 7 (issue 14): the cheapest plan of build/eval/table.json
# whose pass rate beats always-gpt-4 is replayed again with every tier on the
# batch lane (same 10 starting runs, same verdict cache), and both costs are
# printed side by side. The recorded provider speaks the OpenAI wire format,
# whose default batch discount is 0.5 (README "Lanes"); the pass rate must not
# move, since a lane changes the price of an attempt, not its answer.
#
#   sh tools/eval/batch_lane.sh BIN_DIR EVAL_DIR
[ $# -eq 2 ] || { echo "usage: sh tools/eval/batch_lane.sh BIN_DIR EVAL_DIR" >&2; exit 2; }
bin=$1 out=$2
b=$out/batch
mkdir -p "$b/cascades" || exit 1
cp "$out/cascades/models.json" "$b/cascades/" || exit 1
python3 - "$out" "$b" <<'PY' || exit 1
import json, sys
out, b = sys.argv[1:]
rows = [r for r in json.load(open(out + "/table.json")) if r["plan"] != "oracle"]
top = next(r for r in rows if r["plan"] == "gpt-4*1")
better = [r for r in rows if r["pass_rate"] > top["pass_rate"]]
if not better:
    sys.exit("eval: no plan beats always-gpt-4 on pass rate")
best = min(better, key=lambda r: r["cost_usd"])
name = best["plan"].replace("*", "_x").replace(">", "--")
c = json.load(open("%s/cascades/%s.json" % (out, name)))
for t in c["tiers"]:
    t["lane"] = "batch"
c["name"] = c["name"] + "-batch"
json.dump(c, open("%s/cascades/%s.json" % (b, name), "w"), indent=1)
json.dump(best, open(b + "/sync_row.json", "w"))
PY
"$bin/cascade" replay --tasks "$out/tasks.jsonl" --recordings "$out/recordings.jsonl" \
    --cascade "$b"/cascades/*_x*.json --runs 10 --sandboxes 2 \
    --verdict-cache "$out/verdicts.jsonl" --out-dir "$b/results" --table "$b/table.json" \
    > "$b/replay.txt" || exit 1
python3 - "$b" <<'PY'
import json, sys
b = sys.argv[1]
sync = json.load(open(b + "/sync_row.json"))
batch = json.load(open(b + "/table.json"))[0]
est = " *" if sync.get("tokens_estimated") else ""
print("%-44s %-9s %s" % ("plan (cheapest that beats always-gpt-4)", "pass rate", "cost, mean of 10 runs"))
print("%-44s %.3f     sync lane  $%.4f%s" % (sync["plan"], sync["pass_rate"], sync["cost_usd"], est))
print("%-44s %.3f     batch lane $%.4f%s (%.1f%% of sync)" % (
    "  every tier on the batch lane", batch["pass_rate"], batch["cost_usd"], est,
    100 * batch["cost_usd"] / sync["cost_usd"]))
json.dump({"plan": sync["plan"], "pass_rate": sync["pass_rate"],
           "sync_cost_usd": sync["cost_usd"], "batch_cost_usd": batch["cost_usd"],
           "batch_pass_rate": batch["pass_rate"]}, open(b + "/lanes.json", "w"), indent=1)
ok = abs(batch["pass_rate"] - sync["pass_rate"]) < 1e-9 and \
    abs(batch["cost_usd"] - 0.5 * sync["cost_usd"]) <= 0.01 * sync["cost_usd"]
if not ok:
    sys.exit("eval: the batch lane changed the pass rate, or its cost is not half the sync cost")
PY
