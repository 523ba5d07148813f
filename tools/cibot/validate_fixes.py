#!/usr/bin/env python3
"""Validates every recorded fix with our validators and compares the verdicts
with the recorded outcome (truth.jsonl's `passes`).

For each line of OUT/fixes.jsonl (written by load.py) it runs

    cascade validate --task tasks/<program>.json --validators V answers/<i>.md

(the patch validator applies the diff to a temporary tree of the program's
repository at the buggy commit, then the tests run there in the sandbox), a
few at a time, and writes OUT/fixes.verdicts.jsonl: the fix, our verdict and
whether it agrees. Identical answers to the same task are validated once.
Standard-library Python only.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys


def validate(cascade, validators, timeout, fix):
    cmd = [cascade, "validate", "--task", fix["task_file"], "--validators", validators,
           "--timeout", str(timeout), fix["answer"]]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    try:
        v = json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        v = {"pass": False, "validator": "cli", "reason": "no_verdict",
             "message": r.stderr.decode(errors="replace")[-400:]}
    v["exit"] = r.returncode
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="the directory load.py wrote")
    ap.add_argument("--cascade", default="build/cascade")
    ap.add_argument("--validators", default="patch,tests")
    ap.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2))
    ap.add_argument("--timeout", type=int, default=30, help="test run wall clock, seconds")
    a = ap.parse_args()

    with open(os.path.join(a.out, "fixes.jsonl"), encoding="utf-8") as f:
        fixes = [json.loads(line) for line in f if line.strip()]
    # One validation per distinct (task, answer): the validators are
    # deterministic for a task and an answer.
    keyed = {}
    for x in fixes:
        with open(x["answer"], encoding="utf-8", newline="") as f:
            key = (x["task"], f.read())
        keyed.setdefault(key, []).append(x)
    verdicts = {}
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as pool:
        futs = {pool.submit(validate, a.cascade, a.validators, a.timeout, xs[0]): k
                for k, xs in keyed.items()}
        done = 0
        for fut in concurrent.futures.as_completed(futs):
            verdicts[futs[fut]] = fut.result()
            done += 1
            if done % 100 == 0:
                print("validate-fixes: %d/%d distinct answers" % (done, len(futs)),
                      file=sys.stderr)
    agree = 0
    with open(os.path.join(a.out, "fixes.verdicts.jsonl"), "w", encoding="utf-8") as f:
        for k, xs in keyed.items():
            v = verdicts[k]
            for x in xs:
                ok = bool(v.get("pass")) == x["passes"]
                agree += ok
                row = {k2: x[k2] for k2 in ("index", "task", "model", "sample", "source",
                                            "passes")}
                row.update({"ours": bool(v.get("pass")), "agree": ok, "verdict": v})
                f.write(json.dumps(row) + "\n")
    print("validate-fixes: %d fixes (%d distinct answers): %d agree with the recorded outcome, "
          "%d disagree" % (len(fixes), len(keyed), agree, len(fixes) - agree))
    return 0


if __name__ == "__main__":
    sys.exit(main())
