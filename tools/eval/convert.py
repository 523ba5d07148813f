#!/usr/bin/env python3
"""Converts HumanEval and the recorded answers of three models into cascade's
formats, for `make eval`.

    python3 tools/eval/convert.py DATA_DIR OUT_DIR

Reads DATA_DIR/HumanEval.jsonl.gz and DATA_DIR/humaneval_results_3models.jsonl
(never copied; only derived files are written) and writes into OUT_DIR:

  tasks.jsonl        one task per HumanEval problem (kind code, language python)
  recordings.jsonl   one recording per (task, model, run), the answer wrapped in
                     prose and a ```python fenced block so code extraction runs
  cascades/          models.json (July-2023 prices) and one cascade per plan
  models-mock.json   the same models behind ${MOCK_URL}, for the HTTP check
  plans.txt          the cascade files in table order, one per line

The answer file must make the recorded function runnable the way the official
harness does (prompt + completion + test): the recorded `code` is the whole
function, so the task's files carry a prelude `solution.py` with what the
prompt defines before the entry point (imports, helper functions such as
encode_cyclic, constants); the tests validator appends the extracted code to
it. The test file imports the solution, runs the HumanEval test code and calls
check(ENTRY_POINT).

codellama-34b-instruct has no token counts in the records: they are estimated
as characters / 4 (the prompt's for prompt tokens, the code's for completion
tokens), rounded, and the recording says so with "usage_estimated": true.

Standard library only.
"""
import gzip
import itertools
import json
import os
import re
import sys

MODELS = {
    # July-2023 list prices, USD per million input / output tokens.
    "codellama-34b-instruct": (0.776, 0.776),
    "gpt-3.5-turbo": (1.50, 2.00),
    "gpt-4": (30.0, 60.0),
}
CL, G35, G4 = "codellama-34b-instruct", "gpt-3.5-turbo", "gpt-4"
ESTIMATED = {CL}

INSTRUCTION = ("Complete the following Python function. Reply with the whole "
               "function (and any imports it needs) in one fenced code block.\n\n")


def prelude(task):
    """What the prompt defines before the entry point's def."""
    m = re.search(r"^def " + re.escape(task["entry_point"]) + r"\b", task["prompt"], re.M)
    return task["prompt"][: m.start()] if m else task["prompt"]


def test_file(task):
    return ("from solution import *\n\n" + task["test"] + "\n\ncheck(" +
            task["entry_point"] + ")\n")


def wrap(code):
    if not code.endswith("\n"):
        code += "\n"
    return "Here is the function:\n\n```python\n" + code + "```\n"


def plan_name(tiers):
    return ">".join("%s*%d" % (m, a) for m, a in tiers)


def plan_file(tiers):
    return "--".join("%s_x%d" % (m, a) for m, a in tiers) + ".json"


def plans():
    """Table order: each model alone, every order of the three, the issue's plans."""
    out = [[(m, 1)] for m in (CL, G35, G4)]
    out += [[(m, 1) for m in order] for order in itertools.permutations((CL, G35, G4))]
    out += [[(CL, 2), (G35, 5)], [(G35, 5), (G4, 1)]]
    seen, uniq = set(), []
    for p in out:
        if plan_name(p) not in seen:
            seen.add(plan_name(p))
            uniq.append(p)
    return uniq


def models_json(base_url):
    return {
        "providers": {"recorded": {"api": "openai", "base_url": base_url, "key_env": None,
                                   "max_inflight": 64}},
        "models": {m: {"provider": "recorded", "id": m, "input_usd_per_mtok": p[0],
                       "output_usd_per_mtok": p[1], "context": 0, "max_tokens": 4096}
                   for m, p in MODELS.items()},
    }


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert.py DATA_DIR OUT_DIR")
    data, out = sys.argv[1], sys.argv[2]
    he_path = os.path.join(data, "HumanEval.jsonl.gz")
    rec_path = os.path.join(data, "humaneval_results_3models.jsonl")
    for p in (he_path, rec_path):
        if not os.path.exists(p):
            sys.exit("eval: %s is missing; set DATA= to the shared data folder "
                     "(see its README.md)" % p)
    os.makedirs(os.path.join(out, "cascades"), exist_ok=True)

    tasks = {}
    with gzip.open(he_path, "rt") as f:
        for line in f:
            t = json.loads(line)
            tasks[t["task_id"]] = t
    with open(os.path.join(out, "tasks.jsonl"), "w") as f:
        for tid, t in tasks.items():
            task = {
                "id": tid, "kind": "code", "language": "python",
                "prompt": INSTRUCTION + t["prompt"],
                "files": {"solution.py": prelude(t)},
                "tests": {"files": {"test_solution.py": test_file(t)},
                          "command": ["python3", "test_solution.py"]},
                "entry_point": t["entry_point"],
            }
            f.write(json.dumps(task) + "\n")

    n = est = 0
    passed = {}
    with open(rec_path) as f, open(os.path.join(out, "recordings.jsonl"), "w") as o:
        for line in f:
            r = json.loads(line)
            if r["task_id"] not in tasks or r["model"] not in MODELS:
                sys.exit("eval: unexpected record %s / %s" % (r["task_id"], r["model"]))
            rec = {"task": r["task_id"], "model": r["model"], "run": r["run"],
                   "answer": wrap(r["code"])}
            if r["prompt_tokens"] is None or r["completion_tokens"] is None:
                pt = round(len(tasks[r["task_id"]]["prompt"]) / 4)
                ct = round(len(r["code"]) / 4)
                rec["usage"] = {"prompt_tokens": pt, "completion_tokens": ct}
                rec["usage_estimated"] = True
                est += 1
            else:
                rec["usage"] = {"prompt_tokens": r["prompt_tokens"],
                                "completion_tokens": r["completion_tokens"]}
            # The official outcome rides along for people and for the agreement check.
            rec["recorded_passed"] = bool(r["passed"])
            passed[r["model"]] = passed.get(r["model"], 0) + bool(r["passed"])
            o.write(json.dumps(rec) + "\n")
            n += 1

    write_json(os.path.join(out, "cascades", "models.json"),
               models_json("http://127.0.0.1:9/unused-by-replay/v1"))
    write_json(os.path.join(out, "models-mock.json"), models_json("${MOCK_URL}/v1"))
    files = []
    for p in plans():
        name = plan_file(p)
        write_json(os.path.join(out, "cascades", name), {
            "name": plan_name(p), "match": {"kind": "code", "language": "python"},
            "validators": ["syntax", "tests"], "feedback": False,
            "tiers": [{"model": m, "attempts": a} for m, a in p]})
        files.append(os.path.join(out, "cascades", name))
    with open(os.path.join(out, "plans.txt"), "w") as f:
        f.write("\n".join(files) + "\n")
    print("eval: %d tasks, %d recordings (%s) -> %s" % (
        len(tasks), n, ", ".join("%s %d passed" % (m, c) for m, c in sorted(passed.items())),
        out), file=sys.stderr)
    print("eval: %d recordings of %s have no token counts: estimated as characters / 4 "
          "(flagged usage_estimated)" % (est, ", ".join(sorted(ESTIMATED))), file=sys.stderr)


if __name__ == "__main__":
    main()
