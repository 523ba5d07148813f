#!/usr/bin/env python3
"""Builds the cases of `make eval-validators` from the shared data.

    python3 tools/validators/eval_prep.py DATA_DIR OUT.jsonl

Reads DATA_DIR/HumanEval.jsonl.gz and DATA_DIR/humaneval_results_3models.jsonl
(never copied; only the derived file is written) and writes one case per line:

  {"id": "HumanEval/0", "model": "gpt-4", "run": 1, "passed": true,
   "task": {...a cascade task...}, "answer": "...a model answer..."}

for each of the 4,920 recorded answers, then one per canonical solution
(model "canonical", passed true).

The official harness executes prompt + completion + test + check(entry_point)
in one namespace. The recorded `code` is the whole function as the model wrote
it, so the task carries a prelude `solution.py` with what the prompt defines
before the entry point (its imports, and helpers such as encode_cyclic that
some tests call); the tests validator appends the extracted code to it. The
test file imports the solution's names, runs the HumanEval test code and calls
check(ENTRY_POINT). A canonical answer is the prompt plus canonical_solution.

Answers are wrapped in prose and a ```python fence, as a model replies, so
code extraction runs too. Standard library only.
"""
import gzip
import json
import os
import re
import sys


def prelude(task):
    m = re.search(r"^def " + re.escape(task["entry_point"]) + r"\b", task["prompt"], re.M)
    return task["prompt"][: m.start()] if m else task["prompt"]


def cascade_task(t):
    return {
        "id": t["task_id"], "kind": "code", "language": "python",
        "files": {"solution.py": prelude(t)},
        "tests": {"files": {"test_solution.py": "from solution import *\n\n" + t["test"] +
                            "\n\ncheck(" + t["entry_point"] + ")\n"},
                  "command": ["python3", "test_solution.py"]},
    }


def wrap(code):
    if not code.endswith("\n"):
        code += "\n"
    return "Here is the function:\n\n```python\n" + code + "```\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: eval_prep.py DATA_DIR OUT.jsonl")
    data, out = sys.argv[1], sys.argv[2]
    he = os.path.join(data, "HumanEval.jsonl.gz")
    rec = os.path.join(data, "humaneval_results_3models.jsonl")
    for p in (he, rec):
        if not os.path.exists(p):
            sys.exit("eval-validators: %s is missing; set DATA= to the shared data folder "
                     "(see its README.md)" % p)
    with gzip.open(he, "rt") as f:
        tasks = {t["task_id"]: t for t in map(json.loads, f)}
    n = 0
    with open(rec) as f, open(out + ".tmp", "w") as o:
        for line in f:
            r = json.loads(line)
            t = tasks[r["task_id"]]
            o.write(json.dumps({"id": r["task_id"], "model": r["model"], "run": r["run"],
                                "passed": bool(r["passed"]), "task": cascade_task(t),
                                "answer": wrap(r["code"])}) + "\n")
            n += 1
        for t in tasks.values():
            o.write(json.dumps({"id": t["task_id"], "model": "canonical", "run": 1,
                                "passed": True, "task": cascade_task(t),
                                "answer": wrap(t["prompt"] + t["canonical_solution"])}) + "\n")
    os.replace(out + ".tmp", out)
    print("eval-validators: %d recorded answers and %d canonical solutions -> %s"
          % (n, len(tasks), out), file=sys.stderr)


if __name__ == "__main__":
    main()
