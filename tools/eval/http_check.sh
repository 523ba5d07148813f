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
mock_pid=
cleanup() {
    if [ -n "$mock_pid" ]; then
        kill "$mock_pid" 2>/dev/null
        wait "$mock_pid" 2>/dev/null
    fi
    rm -f "$port_file"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$bin/mock-llm" --port 0 --port-file "$port_file" --recordings "$dir/recordings.jsonl" \
    --log "$http/mock.log" --log-bodies 0 &
mock_pid=$!
tries=0
while [ ! -s "$port_file" ]; do
    if ! kill -0 "$mock_pid" 2>/dev/null; then
        echo "eval: mock-llm exited before it was listening" >&2
        mock_pid=
        exit 1
    fi
    tries=$((tries + 1))
    [ $tries -le 100 ] || { echo "eval: mock-llm did not listen within 10 s" >&2; exit 1; }
    sleep 0.1
done
MOCK_URL=http://127.0.0.1:$(cat "$port_file")
export MOCK_URL
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
