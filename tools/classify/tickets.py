#!/usr/bin/env python3
"""The 1,500 real GitHub issues of NLBSE'24 (bug / feature / question) as
classify tasks, and SYNTHETIC recordings for a three-tier cascade run against
build/mock-llm, for `make eval-classify`.

    python3 tools/classify/tickets.py DATA_DIR OUT_DIR

Reads DATA_DIR/nlbse24_issues_train.csv (never copied) and writes into OUT_DIR:

  tasks.jsonl          one classify task per issue: the real title and body
                       (markdown, code, stack traces, non-ASCII, control
                       characters as they are) behind an instruction, the
                       labels as the schema's enum at "label", the gold label
  recordings.jsonl     one answer per (issue, stand-in model): SYNTHETIC
  models-mock.json     the four stand-ins behind ${MOCK_URL} (made-up prices)
  cascades/tickets.json  the three-tier cascade (below)
  standins.json        per stand-in: the fraction right by construction and
                       the answer shapes written, for the checks

The answers are not from any model. Each stand-in is a deterministic rule:
a keyword classifier gives a guess; the issues are ranked by a hash of (issue,
stand-in) and the first round(p x 1500) get the gold label, the rest a wrong
one (the keyword guess when it is wrong, else a label picked by the hash), so
each stand-in is right on exactly the fraction p it is given. The answer's
shape also follows the hash, to exercise the label validator's lenient
reading: a bare label, markdown emphasis, a JSON object, a fenced JSON block,
a label followed by an explanation quoting the issue's real title, "Label:"
and prose, or (a few) prose that names no label. Each answer carries the
probability the mock reports for the label's tokens ("token_prob": high when
right, lower when wrong, overlapping), for the logprob confidence tier.

The cascade:
  tier 0  synthetic-tiny-a, agreeing with synthetic-tiny-b (both asked, both paid; min 2)
  tier 1  synthetic-mid, accepted when the label's probability is at least 0.7
  tier 2  synthetic-large, any label (format only)

Standard library only.
"""
import csv
import hashlib
import json
import os
import re
import sys

LABELS = ["bug", "feature", "question"]
# name -> (fraction right, input, output USD per million tokens: made up)
STANDINS = {
    "synthetic-tiny-a": (0.70, 0.05, 0.10),
    "synthetic-tiny-b": (0.72, 0.06, 0.12),
    "synthetic-mid": (0.85, 0.50, 1.50),
    "synthetic-large": (0.95, 3.00, 15.00),
}
MIN_CONFIDENCE = 0.7
SYNTHETIC = ("SYNTHETIC: answers from a deterministic rule-based stand-in, right on a "
             "fraction set by construction; not a model")
INSTRUCTION = ("Classify this GitHub issue as a bug report, a feature request or a "
               "question. Reply with JSON: {\"label\": \"bug\" | \"feature\" | "
               "\"question\"}.\n\n")
SHAPES = ["bare", "emphasis", "json", "fenced", "explained", "prose", "nolabel"]

BUG = re.compile(r"error|exception|crash|traceback|fail|broken|bug|doesn'?t work|"
                 r"not work|wrong|unexpected|regression", re.I)
FEATURE = re.compile(r"\badd\b|support|feature|request|allow|option|would be nice|"
                     r"proposal|enhancement|implement", re.I)
QUESTION = re.compile(r"^(how|what|why|is|can|does|do|where|which|should)\b|\?\s*$", re.I)


def h(*parts):
    """A stable 64-bit hash of the parts."""
    d = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(d[:8], "big")


def keyword_guess(title, body):
    if QUESTION.search(title.strip()):
        return "question"
    if BUG.search(title) or BUG.search(body[:2000]):
        return "bug"
    if FEATURE.search(title) or FEATURE.search(body[:2000]):
        return "feature"
    return "question"


def excerpt(title):
    """The title as an explanation quotes it: real text, cut to 80 characters."""
    return title[:80]


def answer_text(label, shape, title, prob):
    if shape == "bare":
        return label
    if shape == "emphasis":
        return "**%s**" % label
    if shape == "json":
        return json.dumps({"label": label})
    if shape == "fenced":
        return "```json\n%s\n```\n" % json.dumps(
            {"label": label, "reason": "from the title: " + excerpt(title)}, ensure_ascii=False)
    if shape == "explained":
        return "%s: the report says \"%s\"" % (label, excerpt(title))
    if shape == "prose":
        return "Label: %s\nThe issue \"%s\" reads as one (%.0f%% sure)." % (
            label, excerpt(title), prob * 100)
    return "I cannot tell from this report alone; it could be several things."


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tickets.py DATA_DIR OUT_DIR")
    data, out = sys.argv[1], sys.argv[2]
    path = os.path.join(data, "nlbse24_issues_train.csv")
    if not os.path.exists(path):
        sys.exit("eval-classify: %s is missing; set DATA= to the shared data folder" % path)
    csv.field_size_limit(1 << 26)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        if r.get("label") not in LABELS:
            sys.exit("eval-classify: %s row %d: label %r is not one of %s" %
                     (path, i + 2, r.get("label"), LABELS))
    os.makedirs(os.path.join(out, "cascades"), exist_ok=True)
    ids = ["nlbse/%04d" % (i + 1) for i in range(len(rows))]

    with open(os.path.join(out, "tasks.jsonl"), "w") as f:
        for tid, r in zip(ids, rows):
            task = {"id": tid, "kind": "classify",
                    "prompt": INSTRUCTION + "Title: " + r["title"] + "\n\n" + r["body"],
                    "schema": {"type": "object",
                               "properties": {"label": {"enum": LABELS}},
                               "required": ["label"]},
                    "gold": r["label"], "source_repo": r["repo"],
                    "created_at": r["created_at"]}
            f.write(json.dumps(task) + "\n")

    stats = {"synthetic": SYNTHETIC, "tasks": len(rows), "min_confidence": MIN_CONFIDENCE,
             "standins": {}}
    with open(os.path.join(out, "recordings.jsonl"), "w") as f:
        for model, (p, _, _) in STANDINS.items():
            order = sorted(range(len(rows)), key=lambda i: h(model, "right", ids[i]))
            n_right = round(p * len(rows))
            right = set(order[:n_right])
            shapes = dict.fromkeys(SHAPES, 0)
            low_right = low_wrong = 0
            for i, r in enumerate(rows):
                gold = r["label"]
                if i in right:
                    label = gold
                else:
                    label = keyword_guess(r["title"], r["body"])
                    if label == gold:
                        others = [x for x in LABELS if x != gold]
                        label = others[h(model, "other", ids[i]) % 2]
                hv = h(model, "shape", ids[i])
                # Mostly well-formed answers; 2% name no label.
                shape = "nolabel" if hv % 100 < 2 else SHAPES[(hv >> 8) % 6]
                shapes[shape] += 1
                # Right answers mostly confident, wrong ones mostly not.
                u = ((hv >> 16) % 1000) / 1000.0
                prob = 0.62 + 0.37 * u if i in right else 0.35 + 0.45 * u
                if prob < MIN_CONFIDENCE:
                    low_right += i in right
                    low_wrong += i not in right
                rec = {"task": ids[i], "model": model, "run": 1,
                       "answer": answer_text(label, shape, r["title"], prob),
                       "token_prob": round(prob, 4),
                       "usage": {"prompt_tokens": (len(INSTRUCTION) + len(r["title"]) +
                                                   len(r["body"])) // 4 + 8,
                                 "completion_tokens": 12},
                       "synthetic": True, "intended_label": label}
                f.write(json.dumps(rec) + "\n")
            stats["standins"][model] = {"right": n_right, "fraction_right": n_right / len(rows),
                                        "shapes": shapes,
                                        "below_min_confidence": {"right": low_right,
                                                                 "wrong": low_wrong}}

    models = {
        "providers": {"mock": {"api": "openai", "base_url": "${MOCK_URL}/v1", "key_env": None,
                               "max_inflight": 64}},
        "models": {m: {"provider": "mock", "id": m, "input_usd_per_mtok": pin,
                       "output_usd_per_mtok": pout, "context": 0, "max_tokens": 64}
                   for m, (_, pin, pout) in STANDINS.items()},
    }
    with open(os.path.join(out, "models-mock.json"), "w") as f:
        json.dump(models, f, indent=1)
    with open(os.path.join(out, "cascades", "models.json"), "w") as f:
        json.dump(models, f, indent=1)
    casc = {"name": "tickets-synthetic", "match": {"kind": "classify"},
            "validators": ["label"], "feedback": False,
            "tiers": [{"model": "synthetic-tiny-a",
                       "agree": {"models": ["synthetic-tiny-a", "synthetic-tiny-b"], "min": 2}},
                      {"model": "synthetic-mid", "confidence": "logprobs",
                       "min_confidence": MIN_CONFIDENCE},
                      {"model": "synthetic-large"}]}
    with open(os.path.join(out, "cascades", "tickets.json"), "w") as f:
        json.dump(casc, f, indent=1)
    with open(os.path.join(out, "standins.json"), "w") as f:
        json.dump(stats, f, indent=1)
    print("eval-classify: %d NLBSE issues -> %s; %s" % (len(rows), out, SYNTHETIC),
          file=sys.stderr)
    for m, s in stats["standins"].items():
        print("  %-16s right on %d of %d (%.3f)" % (m, s["right"], len(rows), s["fraction_right"]),
              file=sys.stderr)


if __name__ == "__main__":
    main()
