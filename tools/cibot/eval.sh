#!/bin/sh
# `make eval-cibot`: the CI bot on real bugs and real recorded fixes (issue 10, item 8).
#
#   sh tools/cibot/eval.sh BENCH_DIR BIN_DIR OUT_DIR CONF_DIR
#
# BENCH_DIR has the shape README.md "make eval-cibot" documents
# (programs/<name>/, candidates.jsonl, truth.jsonl); it is only read.
# CONF_DIR holds models.json (the prices) and cascades/*.json (the plans).
# 1. tools/cibot/load.py builds one git repository per program, a patch task
#    per program and the recordings, under OUT_DIR;
# 2. cascade replay runs every plan on the tasks with the recorded fixes as the
#    models' answers (baseline, patch, syntax, tests in the sandbox);
# 3. validate_fixes.py gives our verdict on every recorded fix;
# 4. the recorded fixes that fail become bases of tasks whose baseline must
#    see the same failures twice (the flaky check);
# 5. report.py writes OUT_DIR/table.json, prints the table and checks it.
# JOBS (environment) bounds the sandboxes at once [CPUs + 1].
# Exit 0 when every check passes.

[ $# -eq 4 ] || { echo "usage: sh tools/cibot/eval.sh BENCH_DIR BIN_DIR OUT_DIR CONF_DIR" >&2; exit 2; }
bench=$1 bin=$2 out=$3 conf=$4
root=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
jobs=${JOBS:-$(($(nproc) + 1))}
t0=$(date +%s)
step() { echo "== eval-cibot: $* ($(($(date +%s) - t0)) s)"; }

for f in candidates.jsonl truth.jsonl programs; do
    [ -e "$bench/$f" ] || { echo "eval-cibot: $bench/$f not found; give DATA=path/to/shared/data" \
        "(or a directory of that shape)" >&2; exit 2; }
done

step "loading $bench"
python3 "$root/tools/cibot/load.py" "$bench" "$out" || exit 1

plans=""
for c in "$conf"/cascades/*.json; do plans="$plans --cascade $c"; done
step "replaying $(echo "$plans" | wc -w | awk '{print $1 / 2}') plans ($jobs sandboxes)"
# shellcheck disable=SC2086 # one --cascade per plan
"$bin/cascade" replay -q --tasks "$out/tasks.jsonl" --recordings "$out/recordings.jsonl" \
    $plans --models "$conf/models.json" --sandboxes "$jobs" --test-timeout 20 \
    --out-dir "$out/results" --table "$out/replay-table.json" || exit 1

step "validating every recorded fix"
python3 "$root/tools/cibot/validate_fixes.py" "$out" --cascade "$bin/cascade" \
    --validators patch,syntax,tests --jobs "$jobs" || exit 1

step "flaky check: $(wc -l < "$out/flaky/tasks.jsonl") failing fixes as bases"
"$bin/cascade" replay -q --tasks "$out/flaky/tasks.jsonl" \
    --recordings "$out/flaky/recordings.jsonl" --cascade "$out/flaky/flaky-check.json" \
    --models "$out/flaky/models.json" --sandboxes "$jobs" --test-timeout 20 \
    -o "$out/flaky/results.jsonl" > /dev/null || exit 1

step "report"
python3 "$root/tools/cibot/report.py" "$out" --models "$conf/models.json" \
    --cascades "$conf/cascades"
status=$?
step "done"
exit $status
