#!/usr/bin/env python3
"""Converts RouterBench's multiple-choice answers of 11 real models (ARC-Challenge
and Winogrande train files) into cascade's formats, for `make eval-classify`.

    python3 tools/classify/convert.py DATA_DIR OUT_DIR

Reads DATA_DIR/routerbench_arc_challenge_train.csv and
DATA_DIR/routerbench_winogrande_train.csv (never copied; only derived files are
written; DATA_DIR/README-classify.md describes them) and writes into OUT_DIR:

  models.json             the 11 models (short names; RouterBench's name as id)
                          at the per-token prices RouterBench priced them at
  cascades/               models.json again (replay reads the one beside a
                          cascade) and one cascade per plan: each model alone,
                          the format-only chain, agreement plans
  plans.txt               the cascade files in table order, one per line
  arc/, wino/             per data set: tasks.jsonl (kind classify, the 5-shot
                          prompt, the option letters as the schema's enum, the
                          derived gold) and recordings.jsonl (one per task and
                          model: the model's real answer, untouched, and the
                          real cost of that call as "cost_usd")
  convert.json            counts: rows, tasks, merged rows, rows without gold

Gold (README-classify.md): a response counts as a letter when, stripped, it is
one option letter optionally followed by ")", "." or ":"; the gold is the letter
the models RouterBench scored 1.0 gave. Rows where those disagree, or where a
model scored 0.0 gave it, are refused (none in these files); rows with no model
scored 1.0 have no gold and are left out (counted). ARC's split rows (same
sample_id, one holding only gpt-3.5's score with its prompt twice and about
double costs) are merged: the row with the most scores gives the prompt, the
answers and the costs, the other only its scores.

Recordings carry no token counts: RouterBench gives only each call's cost, and
replay charges "cost_usd" instead of tokens x price. The prices in models.json
are the ones that reproduce those costs (each model's cost over gpt-3.5's, per
row, sits at the ratio of their input prices: checked here, within 2% on the
median) and are what the budget checks and the report's top-tier pricing see.

Standard library only.
"""
import ast
import collections
import csv
import itertools
import json
import os
import re
import statistics
import sys

# RouterBench name -> (short name, input, output USD per million tokens). The
# prices are RouterBench's (late-2023 list prices of the APIs it called); the
# ratio check below ties them to the recorded costs.
MODELS = {
    "mistralai/mistral-7b-chat": ("mistral-7b", 0.2, 0.2),
    "WizardLM/WizardLM-13B-V1.2": ("wizardlm-13b", 0.3, 0.3),
    "mistralai/mixtral-8x7b-chat": ("mixtral-8x7b", 0.6, 0.6),
    "meta/code-llama-instruct-34b-chat": ("codellama-34b", 0.776, 0.776),
    "zero-one-ai/Yi-34B-Chat": ("yi-34b", 0.8, 0.8),
    "claude-instant-v1": ("claude-instant-v1", 0.8, 2.4),
    "meta/llama-2-70b-chat": ("llama-2-70b", 0.9, 0.9),
    "gpt-3.5-turbo-1106": ("gpt-3.5-turbo", 1.0, 2.0),
    "claude-v1": ("claude-v1", 8.0, 24.0),
    "claude-v2": ("claude-v2", 8.0, 24.0),
    "gpt-4-1106-preview": ("gpt-4", 10.0, 30.0),
}
TOP = "gpt-4"
BASE = "gpt-3.5-turbo-1106"  # the ratio check's reference
# Models cheap enough to sit below gpt-4 in an agreement tier (claude-v1 and
# v2 cost 80% of gpt-4 each: asking one of them is no saving).
CHEAP = ["mistral-7b", "wizardlm-13b", "mixtral-8x7b", "codellama-34b", "yi-34b",
         "claude-instant-v1", "llama-2-70b", "gpt-3.5-turbo"]
SETS = {"arc": "routerbench_arc_challenge_train.csv",
        "wino": "routerbench_winogrande_train.csv"}

LETTER = re.compile(r"([A-Z])[).:]?")
OPTION = re.compile(r"^([A-Z])\) ", re.M)


def letter(text):
    """README-classify.md's rule: one option letter, optionally ), . or :."""
    m = LETTER.fullmatch(text.strip())
    return m.group(1) if m else None


def literal_text(cell, what):
    """A list literal such as "['A\\n']" as the text it holds."""
    try:
        v = ast.literal_eval(cell)
    except (ValueError, SyntaxError) as e:
        raise ValueError("%s is not a list literal: %s" % (what, e)) from None
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ValueError("%s is not a list of strings" % what)
    return "".join(v)


def options(prompt):
    """The option letters of the last question (after the last worked answer)."""
    at = [m.start() for m in re.finditer("Answer:", prompt)]
    if not at:
        raise ValueError("no Answer: in the prompt")
    tail = prompt[at[-2] + len("Answer:"):at[-1]] if len(at) > 1 else prompt[:at[-1]]
    letters = OPTION.findall(tail)
    if not letters:
        raise ValueError("no options A) ... in the prompt's last question")
    return sorted(set(letters))


def load(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError("%s: no rows" % path)
    missing = [m for m in MODELS if m + "|model_response" not in rows[0]]
    if missing:
        raise ValueError("%s: no columns for %s" % (path, ", ".join(missing)))
    return rows


def convert_set(key, path, out):
    """Tasks and recordings of one file; returns its counts."""
    rows = load(path)
    by_id = collections.OrderedDict()
    for r in rows:
        by_id.setdefault(r["sample_id"], []).append(r)
    counts = {"file": os.path.basename(path), "rows": len(rows), "merged_rows": 0,
              "no_gold": 0, "tasks": 0, "recordings": 0}
    ratios = collections.defaultdict(list)
    os.makedirs(os.path.join(out, key), exist_ok=True)
    with open(os.path.join(out, key, "tasks.jsonl"), "w") as tf, \
            open(os.path.join(out, key, "recordings.jsonl"), "w") as rf:
        for sid, group in by_id.items():
            # The row with the most scores carries the prompt, answers and costs.
            base = max(group, key=lambda r: sum(1 for m in MODELS if r[m].strip()))
            counts["merged_rows"] += len(group) - 1
            score = {m: next((r[m].strip() for r in group if r[m].strip()), "") for m in MODELS}
            where = "%s: sample_id %s" % (os.path.basename(path), sid)
            prompt = literal_text(base["prompt"], where + " prompt")
            labels = options(prompt)
            answers = {m: literal_text(base[m + "|model_response"], "%s %s" % (where, m))
                       for m in MODELS}
            right = {letter(answers[m]) for m in MODELS if score[m] == "1.0"} - {None}
            wrong = {letter(answers[m]) for m in MODELS if score[m] == "0.0"} - {None}
            if len(right) > 1 or right & wrong:
                raise ValueError("%s: the scores contradict (1.0 gave %s, 0.0 gave %s)" %
                                 (where, sorted(right), sorted(wrong)))
            if not right:
                counts["no_gold"] += 1
                continue
            gold = right.pop()
            if gold not in labels:
                raise ValueError("%s: gold %s is not an option (%s)" % (where, gold, labels))
            task = {"id": "%s/%s" % (key, sid), "kind": "classify", "prompt": prompt,
                    "schema": {"enum": labels}, "gold": gold,
                    "routerbench_row": base[""]}
            tf.write(json.dumps(task) + "\n")
            counts["tasks"] += 1
            for m, (short, _, _) in MODELS.items():
                cost = float(base[m + "|total_cost"])
                rec = {"task": task["id"], "model": short, "run": 1, "answer": answers[m],
                       "cost_usd": cost,
                       "routerbench_score": float(score[m]) if score[m] else None}
                rf.write(json.dumps(rec) + "\n")
                counts["recordings"] += 1
                ratios[m].append(cost / float(base[BASE + "|total_cost"]))
    for m, (short, pin, _) in MODELS.items():
        med = statistics.median(ratios[m])
        want = pin / MODELS[BASE][1]
        if abs(med / want - 1) > 0.02:
            raise ValueError("%s: %s costs %.3f x gpt-3.5 on the median, its price says %.3f" %
                             (path, short, med, want))
    return counts


def models_json(base_url):
    return {
        "providers": {"recorded": {"api": "openai", "base_url": base_url, "key_env": None,
                                   "max_inflight": 64}},
        "models": {short: {"provider": "recorded", "id": rb, "input_usd_per_mtok": pin,
                           "output_usd_per_mtok": pout, "context": 0, "max_tokens": 16}
                   for rb, (short, pin, pout) in MODELS.items()},
    }


def cascade(name, tiers):
    return {"name": name, "match": {"kind": "classify"}, "validators": ["label"],
            "feedback": False, "tiers": tiers}


def plans():
    """(file name, cascade) in table order: singles, the format-only chain."""
    by_price = sorted(MODELS.values(), key=lambda v: (v[1], v[2], v[0]))
    out = [("%s_x1.json" % short, cascade("%s*1" % short, [{"model": short}]))
           for short, _, _ in by_price]
    # What a classify cascade did before doubt: any letter passes, so the
    # cheapest model's answer stands whenever it is a letter.
    chain = ["mistral-7b", "gpt-3.5-turbo", TOP]
    out.append(("format-only.json",
                cascade("format-only:" + ">".join(chain), [{"model": m} for m in chain])))
    # Agreement: the cheap models of a tier asked together (all paid), a label
    # accepted when `min` of them give it, else gpt-4 alone. Every pair with
    # min 2 and every triple with min 2 and min 3: the table keeps the best.
    for k in (2, 3):
        for group in itertools.combinations(CHEAP, k):
            for need in range(2, k + 1):
                name = "%s:%d>%s" % ("+".join(group), need, TOP)
                tier = {"model": group[0], "agree": {"models": list(group), "min": need}}
                out.append(("agree-%s-%d.json" % ("+".join(group), need),
                            cascade(name, [tier, {"model": TOP}])))
    return out


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: convert.py DATA_DIR OUT_DIR")
    data, out = sys.argv[1], sys.argv[2]
    for f in SETS.values():
        p = os.path.join(data, f)
        if not os.path.exists(p):
            sys.exit("eval-classify: %s is missing; set DATA= to the shared data folder "
                     "(see its README-classify.md)" % p)
    csv.field_size_limit(1 << 26)
    os.makedirs(os.path.join(out, "cascades"), exist_ok=True)
    summary = {}
    try:
        for key, f in SETS.items():
            summary[key] = convert_set(key, os.path.join(data, f), out)
    except (ValueError, KeyError) as e:
        sys.exit("eval-classify: %s" % e)
    unused = "http://127.0.0.1:9/unused-by-replay/v1"
    write_json(os.path.join(out, "models.json"), models_json(unused))
    write_json(os.path.join(out, "cascades", "models.json"), models_json(unused))
    files = []
    for name, c in plans():
        write_json(os.path.join(out, "cascades", name), c)
        files.append(os.path.join(out, "cascades", name))
    with open(os.path.join(out, "plans.txt"), "w") as f:
        f.write("\n".join(files) + "\n")
    write_json(os.path.join(out, "convert.json"), summary)
    for key, c in summary.items():
        print("eval-classify: %s: %d rows -> %d tasks with gold (%d rows merged into their "
              "pair, %d without gold left out), %d recordings" %
              (c["file"], c["rows"], c["tasks"], c["merged_rows"], c["no_gold"],
               c["recordings"]), file=sys.stderr)


if __name__ == "__main__":
    main()
