#!/bin/sh
# `make eval`: the cost story measured on real model answers (issue 6).
#
#   sh tools/eval/eval.sh DATA_DIR BUILD_DIR
#
# 1. converts HumanEval and the three models' recorded answers (DATA_DIR, read
#    only) into tasks, recordings, a models file and one cascade per plan in
#    build/eval/;
# 2. replays every plan from 10 starting runs with the real validators (one
#    verdict cache for all: each distinct answer is validated once) and writes
#    build/eval/table.json, with the oracle row;
# 3. checks the table against the issue's reference and our verdicts against
#    the recorded official outcomes;
# 4. runs one plan through mock-llm over HTTP with `cascade run` and checks
#    it gives the replay's results task by task;
# 5. tunes a plan for pass rate 0.85 on one half of the tasks and judges it
#    on the other;
# 6. replays the plan plain and with a semantic start tier on the odd-numbered
#    tasks, the even ones its history (tools/eval/similar.py);
# 7. writes the HTML report of the cascade plan, with the table's chart;
# 8. prices the cheapest plan that beats always-gpt-4 on pass rate on the
#    batch lane as well as the sync lane (issue 14).
# Exits non-zero when a check fails.

[ $# -eq 2 ] || { echo "usage: sh tools/eval/eval.sh DATA_DIR BUILD_DIR" >&2; exit 2; }
data=$1
case $2 in /*) bin=$2 ;; *) bin=$(pwd)/$2 ;; esac
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
cd "$root" || exit 1
out=build/eval
plan=codellama-34b-instruct_x1--gpt-3.5-turbo_x1--gpt-4_x1
status=0
t0=$(date +%s)
step() { echo; echo "== eval: $* ($(($(date +%s) - t0)) s)"; }

if [ ! -d "$data" ]; then
    echo "eval: the data folder $data is absent; give DATA=/path/to/shared/data" >&2
    exit 1
fi
step "converting $data"
rm -rf "$out/results" "$out/http" "$out/verdicts.jsonl" "$out/batch"
python3 tools/eval/convert.py "$data" "$out" || exit 1

step "replaying $(wc -l < "$out/plans.txt") plans x 10 runs (2 sandboxes)"
# shellcheck disable=SC2046 # one --cascade per line of plans.txt
"$bin/cascade" replay --tasks "$out/tasks.jsonl" --recordings "$out/recordings.jsonl" \
    $(sed 's/^/--cascade /' "$out/plans.txt") --runs 10 --sandboxes 2 \
    --verdict-cache "$out/verdicts.jsonl" --out-dir "$out/results" --table "$out/table.json" --oracle || exit 1

step "tuning for pass rate 0.85 on half the tasks"
r=$out/results
"$bin/cascade" tune --tasks "$out/tasks.jsonl" --target 0.85 -o "$out/tuned.json" \
    --summary "$out/tune.json" --name tuned-humaneval \
    --base "$out/cascades/$plan.json" \
    --from "$r"/codellama-34b-instruct_x1.jsonl "$r"/codellama-34b-instruct_x1.pass*.jsonl \
    "$r"/gpt-3.5-turbo_x1.jsonl "$r"/gpt-3.5-turbo_x1.pass*.jsonl \
    "$r"/gpt-4_x1.jsonl "$r"/gpt-4_x1.pass*.jsonl || status=1

step "checking the table, our verdicts and tune's held-out figures"
python3 tools/eval/check.py "$out" || status=1

step "HTTP cross-check: $plan through mock-llm with cascade run"
sh tools/eval/http_check.sh "$bin" "$out" "$out/cascades/$plan.json" \
    "$out/results/$plan.jsonl" || status=1

step "semantic start tier: $plan plain and with a similar start, on held-out tasks"
python3 tools/eval/similar.py "$bin/cascade" "$out" "$plan" || status=1

step "HTML report"
"$bin/cascade" report "$out/results/$plan.jsonl" --models "$out/cascades/models.json" \
    --cascades "$out/cascades" --tasks "$out/tasks.jsonl" --table "$out/table.json" \
    --html "$out/report.html" > "$out/report.txt" || status=1
echo "eval: $out/report.txt and $out/report.html"

step "batch lane: the cheapest plan that beats always-gpt-4, on both lanes"
sh tools/eval/batch_lane.sh "$bin" "$out" || status=1

step "done: $( [ $status -eq 0 ] && echo 'all checks pass' || echo 'SOME CHECKS FAILED')"
exit $status
