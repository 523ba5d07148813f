#!/bin/sh
# `make eval-cibot` on the synthetic benchmark in fixtures/eval/cibot/ (two
# programs, six recorded fixes, never the shared data), so the loader, the
# replay of patch tasks, the per-fix validation, the flaky check and the
# report are tested hermetically. Asserts what each step produced, then that
# the report's checks bite: a disagreement nobody explained, and a base the
# flaky logic called flaky, each fail it; and that a directory of the wrong
# shape is refused with the line named.
#
#   CASCADE_BIN=build/cascade SRC_DIR=. sh tests/eval_cibot.sh
set -u
src=${SRC_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=$(cd "$(dirname "${CASCADE_BIN:-$src/build/cascade}")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$tmp/out
fails=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
py() { python3 -c "$1"; }
# A Python check read from stdin; OUT is the output directory.
pycheck() { if OUT=$out python3 -c "import os; OUT=os.environ['OUT']
$(cat)"; then ok "$1"; else bad "$1"; fi; }

JOBS=2 sh "$src/tools/cibot/eval.sh" "$src/fixtures/eval/cibot" "$bin" "$out" \
    "$src/fixtures/eval/cibot/conf" > "$tmp/log" 2>&1
rc=$?
check "eval.sh exits 0 on the fixture" '[ $rc -eq 0 ]' || cat "$tmp/log"

# The loader: a repository per program with its one commit, the task's base.
for p in add maxi; do
    head=$(git -C "$out/repos/$p" rev-parse HEAD 2>/dev/null)
    n=$(git -C "$out/repos/$p" rev-list --count HEAD 2>/dev/null)
    base=$(py "import json;print(json.load(open('$out/tasks/$p.json'))['repo']['base'])")
    check "repos/$p: one commit, the task's base" '[ "$n" = 1 ] && [ "$head" = "$base" ]'
    check "repos/$p: clean worktree" '[ -z "$(git -C "$out/repos/$p" status --porcelain)" ]'
done
pycheck "tasks.jsonl: two patch tasks with a test command" <<'PY'
import json
t=[json.loads(l) for l in open(OUT+'/tasks.jsonl')]
assert [x['id'] for x in t]==['cibot/add','cibot/maxi'], t
assert all(x['kind']=='patch' and x['tests']['command'][:3]==['python3','-m','pytest'] for x in t)
assert t[0]['context_files']==['add.py']
PY
# Recordings: run k of (task, model) is sample k; each source's wrapping.
pycheck "recordings: runs per (task, model), raw chat text kept, diff fenced after it" <<'PY'
import json
r=[json.loads(l) for l in open(OUT+'/recordings.jsonl')]
assert [(x['task'],x['model'],x['run']) for x in r]==[('cibot/add','tiny-model',1),
  ('cibot/add','tiny-model',2),('cibot/add','big-model',1),('cibot/maxi','tiny-model',1),
  ('cibot/maxi','big-model',1),('cibot/maxi','big-model',2)], r
a=r[2]['answer']
assert a.startswith('Yes, the program has a bug') and a.index('```python')<a.index('```diff'), a
assert r[0]['answer'].startswith('```patch\n--- a/add.py'), r[0]['answer']
assert all(x['usage_estimated'] and x['usage']['prompt_tokens']>0 for x in r)
PY
pycheck "bases: each distinct fixed file a commit on fix/<i>, the fix without one has none" <<'PY'
import json,subprocess
b=[json.loads(l) for l in open(OUT+'/bases.jsonl')]
assert [x['index'] for x in b]==[0,1,2,3,4], b
for x in b:
    p=subprocess.run(['git','-C',OUT+'/repos/'+x['program'],'rev-parse','fix/%d'%x['index']],
                     capture_output=True,text=True).stdout.strip()
    assert p==x['commit'], (p,x)
f=[json.loads(l) for l in open(OUT+'/fixes.jsonl')]
assert f[5]['base_branch'] is None, f[5]
PY

# The replay and the table.
pycheck "table.json: tiny-big accepts add at big-model after one climb, maxi at tiny-model" <<'PY'
import json
t=json.load(open(OUT+'/table.json'))
p={x['plan']:x for x in t['plans']}
tb=p['tiny-big']
assert tb['pass_rate']==1 and tb['climbs']==1, tb
assert tb['accepted_per_tier']=={'0 tiny-model':1,'1 big-model':1}, tb
assert p['big']['accepted_per_tier']=={'0 big-model':2} and p['big']['climbs']==0
assert 0 < tb['cost_usd'] < p['big']['cost_usd'], (tb, p['big'])
assert t['prices_usd_per_mtok']=={'tiny-model':[0.1,0.4],'big-model':[10,40]}, t['prices_usd_per_mtok']
PY
pycheck "table.json: our verdicts agree with the recorded outcome on all 6 fixes" <<'PY'
import json
a=json.load(open(OUT+'/table.json'))['agreement']
assert a['fixes']==6 and a['agree']==6 and a['unexplained']==0, a
assert a['verdicts']=={'pass':4,'tests: failed':1,'patch: does_not_apply':1}, a['verdicts']
PY
pycheck "table.json: the failing fix as a base fails twice, nothing flaky" <<'PY'
import json
f=json.load(open(OUT+'/table.json'))['flaky_check']
assert f['bases']==1 and f['results']==1 and f['baseline_runs']==2, f
assert f['flaky_flagged']==0 and not f['not_failing_at_base'], f
PY

# The checks bite: an unexplained disagreement, and a flaky flag.
cp "$out/fixes.verdicts.jsonl" "$tmp/v.keep"
py "
import json
rows=[json.loads(l) for l in open('$out/fixes.verdicts.jsonl')]
rows[3]['passes']=False; rows[3]['agree']=False
open('$out/fixes.verdicts.jsonl','w').write(''.join(json.dumps(r)+'\n' for r in rows))"
python3 "$src/tools/cibot/report.py" "$out" --models "$src/fixtures/eval/cibot/conf/models.json" \
    --cascades "$src/fixtures/eval/cibot/conf/cascades" \
    > "$tmp/r1" 2>&1
rc=$?
check "report: an unexplained disagreement fails the check and is listed" \
    '[ $rc -eq 1 ] && grep -q "UNEXPLAINED fix 3 cibot/maxi tiny-model" "$tmp/r1"'
cp "$tmp/v.keep" "$out/fixes.verdicts.jsonl"
py "
import json
rows=[json.loads(l) for l in open('$out/flaky/results.jsonl')]
rows[0]['tests']['flaky']=1; rows[0]['tests']['flaky_tests']=['test_sum']
open('$out/flaky/results.jsonl','w').write(''.join(json.dumps(r)+'\n' for r in rows))"
python3 "$src/tools/cibot/report.py" "$out" --models "$src/fixtures/eval/cibot/conf/models.json" \
    --cascades "$src/fixtures/eval/cibot/conf/cascades" \
    > "$tmp/r2" 2>&1
rc=$?
check "report: a test flagged flaky on a stable base fails the check" \
    '[ $rc -eq 1 ] && grep -q "1 flagged flaky" "$tmp/r2"'

# A directory of the wrong shape: named, nothing half-built is trusted.
mkdir -p "$tmp/bad"
cp -r "$src/fixtures/eval/cibot/programs" "$src/fixtures/eval/cibot/candidates.jsonl" "$tmp/bad/"
head -n 5 "$src/fixtures/eval/cibot/truth.jsonl" > "$tmp/bad/truth.jsonl"
python3 "$src/tools/cibot/load.py" "$tmp/bad" "$tmp/badout" > "$tmp/r3" 2>&1
rc=$?
check "load: candidates and truth of different lengths: exit 2, both counts named" \
    '[ $rc -eq 2 ] && grep -q "candidates.jsonl has 6 lines, truth.jsonl 5" "$tmp/r3"'
cp "$src/fixtures/eval/cibot/truth.jsonl" "$tmp/bad/truth.jsonl"
sed -i '2s/"add"/"nosuch"/' "$tmp/bad/candidates.jsonl"
python3 "$src/tools/cibot/load.py" "$tmp/bad" "$tmp/badout" > "$tmp/r4" 2>&1
rc=$?
check "load: a fix for a program that is not there: exit 2, line named" \
    '[ $rc -eq 2 ] && grep -q "line 2: candidates and truth differ in program" "$tmp/r4"'

[ $fails -eq 0 ] && echo "eval_cibot: all checks pass" || echo "eval_cibot: $fails checks failed"
[ $fails -eq 0 ]
