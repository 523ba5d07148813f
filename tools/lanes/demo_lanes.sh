#!/bin/sh
# The demo tasks with every cascade's tiers on the given lanes (README
# "Lanes"), against build/mock-llm's Batch API; prints cascade's summary
# (total cost, and what the same attempts cost on the sync lane) and the
# batches the mock saw created, one line each with its request count.
#
#   sh tools/lanes/demo_lanes.sh BIN_DIR [LANE0 LANE1 LANE2]   (default batch batch sync)
[ $# -ge 1 ] || { echo "usage: demo_lanes.sh BIN_DIR [LANE0 LANE1 LANE2]" >&2; exit 2; }
bin=$(cd "$1" && pwd) || exit 1
l0=${2:-batch} l1=${3:-batch} l2=${4:-sync}
cd "$(dirname "$0")/../.." || exit 1
out=build/lanes-demo
rm -rf "$out" && mkdir -p "$out/cascades" || exit 1
cp fixtures/demo/models.json "$out/cascades/" || exit 1
for f in fixtures/demo/cascades/*.json; do
    python3 - "$f" "$out/cascades/$(basename "$f")" "$l0" "$l1" "$l2" <<'PY' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
lanes = sys.argv[3:]
for i, t in enumerate(c["tiers"]):
    t["lane"] = lanes[min(i, 2)]
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
done
. tools/mock_start.sh
mock_start "$bin" fixtures/demo/recordings.jsonl "$out/mock.log" "$out/mock.port" demo_lanes
timeout -k 10 600 "$bin/cascade" run fixtures/demo/tasks.jsonl --cascades "$out/cascades" \
    -o "$out/results.jsonl" --batch-poll 0.05
rc=$?
python3 - "$out/mock.log" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    if o.get("batch") == "created":
        print("batch %s: %d requests (%s ...)" % (o["id"], o["requests"], ", ".join(o["custom_ids"][:3])))
PY
exit $rc
