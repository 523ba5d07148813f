#!/bin/sh
# Runs one plan through build/mock-llm over HTTP with `cascade run` and checks
# the results equal the replay's, task by task (status, tier, model, cost).
# mock-llm serves runs 1, 2, ... in turn per (task, model), which is the
# replay's pass 1 (start 0).
#
#   sh tools/eval/http_check.sh BIN_DIR EVAL_DIR CASCADE_FILE REPLAY_RESULTS
[ $# -eq 4 ] || { echo "usage: http_check.sh BIN_DIR EVAL_DIR CASCADE_FILE REPLAY_RESULTS" >&2; exit 2; }
bin=$1 dir=$2 cascade=$3 replayed=$4
http=$dir/http
mkdir -p "$http" || exit 1
port_file=$http/mock.port
# cascade run resumes from a journal beside its output: start from nothing.
rm -f "$port_file" "$http"/results.jsonl* "$http"/escalations.jsonl
. "$(dirname "$0")/../mock_start.sh"
mock_start "$bin" "$dir/recordings.jsonl" "$http/mock.log" "$port_file" eval
# Bounded: a hung run must fail the check, not the whole make eval.
timeout -k 10 900 "$bin/cascade" run "$dir/tasks.jsonl" --cascades "$cascade" \
    --models "$dir/models-mock.json" --sandboxes 2 -o "$http/results.jsonl" \
    --escalations "$http/escalations.jsonl"
rc=$?
if [ $rc -ne 0 ]; then
    echo "eval: cascade run over HTTP exited with status $rc$( [ $rc -eq 124 ] && echo ' (timed out after 900 s)')" >&2
    exit 1
fi
python3 tools/eval/compare.py "$replayed" "$http/results.jsonl"
