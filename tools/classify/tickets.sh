#!/bin/sh
# The 1,500 NLBSE issues through the three-tier classify cascade of
# tools/classify/tickets.py against build/mock-llm, over HTTP with
# `cascade run`: timed, then `cascade report` (text and HTML) and the checks
# of tools/classify/tickets_check.py. The answers are SYNTHETIC (rule-based
# stand-ins, see tickets.py); every output says so.
#
#   sh tools/classify/tickets.sh DATA_DIR BIN_DIR OUT_DIR
[ $# -eq 3 ] || { echo "usage: tickets.sh DATA_DIR BIN_DIR OUT_DIR" >&2; exit 2; }
data=$1 bin=$2 dir=$3
python3 tools/classify/tickets.py "$data" "$dir" || exit 1
port_file=$dir/mock.port
# cascade run resumes from a journal beside its output: start from nothing.
rm -f "$port_file" "$dir"/results.jsonl* "$dir"/escalations.jsonl
. "$(dirname "$0")/../mock_start.sh"
mock_start "$bin" "$dir/recordings.jsonl" "$dir/mock.log" "$port_file" eval-classify
t0=$(date +%s.%N)
# Bounded: a hung run must fail the step, not hang make.
timeout -k 10 900 "$bin/cascade" run "$dir/tasks.jsonl" --cascades "$dir/cascades/tickets.json" \
    --models "$dir/models-mock.json" -o "$dir/results.jsonl" \
    --escalations "$dir/escalations.jsonl" 2> "$dir/run.log"
rc=$?
t1=$(date +%s.%N)
tail -n 20 "$dir/run.log"
if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && rc="124 (timed out after 900 s)"
    echo "eval-classify: cascade run exited with status $rc" >&2
    exit 1
fi
secs=$(python3 -c "print('%.2f' % ($t1 - $t0))")
echo "eval-classify: the 1,500-issue run took $secs s" \
    "(cascade run against mock-llm, SYNTHETIC answers)"
"$bin/cascade" report "$dir/results.jsonl" --models "$dir/cascades/models.json" \
    --cascades "$dir/cascades" --tasks "$dir/tasks.jsonl" --html "$dir/report.html" \
    > "$dir/report.txt" || exit 1
{
    echo "SYNTHETIC: the answers are from deterministic rule-based stand-ins" \
        "(tools/classify/tickets.py), not models."
    cat "$dir/report.txt"
} > "$dir/report.tmp" && mv "$dir/report.tmp" "$dir/report.txt"
cat "$dir/report.txt"
python3 tools/classify/tickets_check.py "$dir" "$secs"
