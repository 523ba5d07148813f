#!/usr/bin/env python3
"""Turns a benchmark of real bugs and recorded fixes into CI-bot inputs.

Reads a directory of this shape (documented in README.md, "make eval-cibot"):

    programs/<name>/     the buggy file and its test (plus any helper files)
    candidates.jsonl     one recorded fix per line: program, model, sample,
                         diff (unified, a/<file> b/<file>), optional raw_output,
                         optional provenance.repo (which harness answered)
    truth.jsonl          same order: passes (the test run on the fixed file)
    benchmark.json       optional: name, language, file, test_command, prompt

and writes, under OUT (never into the data directory):

    repos/<name>/        a git repository per program, one commit: the buggy tree
    tasks.jsonl          one patch task per program (kind "patch")
    tasks/<name>.json    the same task, one per file, for `cascade validate`
    recordings.jsonl     the recorded fixes as model answers (mock-llm format),
                         run k of (task, model) = sample k
    answers/<i>.md       the answer of fix i (line i of candidates.jsonl)
    fixes.jsonl          per fix: index, task, model, sample, passes, answer file
    bases.jsonl          per fix whose fixed file is new: a commit of the fixed
                         program on branch fix/<i> of its repository (for the
                         flaky check: the recorded fix as the base of a task)

Standard-library Python only; git is driven through its command line with a
fixed author and date, so the same data gives the same commits.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

DEFAULTS = {
    "name": None,  # the directory's base name
    "language": "python",
    "file": "{name}.py",
    "test_command": ["python3", "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                     "test_{name}.py"],
    # Names no test, so every test failing at base is a target.
    "prompt": "Fix the bug in {file} so that its tests pass; do not change the tests.",
    "test_file": "test_{name}.py",
}

GIT_ENV = {
    "GIT_AUTHOR_NAME": "cascade-eval", "GIT_AUTHOR_EMAIL": "eval@localhost",
    "GIT_COMMITTER_NAME": "cascade-eval", "GIT_COMMITTER_EMAIL": "eval@localhost",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent",
}


class BadInput(Exception):
    """The data directory does not have the documented shape."""


def git(repo, *args, stdin=None):
    env = dict(os.environ)
    env.update(GIT_ENV)
    r = subprocess.run(["git", "-C", repo, *args], input=stdin, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if r.returncode != 0:
        raise RuntimeError("git %s in %s: %s" % (" ".join(args), repo,
                                                 r.stderr.decode(errors="replace")))
    return r.stdout.decode().strip()


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadInput("%s:%d: %s" % (path, n, e)) from e
    return rows


def load_config(data):
    cfg = dict(DEFAULTS)
    path = os.path.join(data, "benchmark.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            cfg.update(json.load(f))
    if not cfg["name"]:
        cfg["name"] = os.path.basename(os.path.normpath(data))
    return cfg


def fill(template, name, cfg):
    """Replaces {name}, {file} and {test} in one template string."""
    f = cfg["file"].format(name=name)
    t = cfg["test_file"].format(name=name)
    return template.format(name=name, file=f, test=t)


def wrap_answer(cand, diff):
    """The recorded fix as the answer its source gave, around the diff.

    Each harness answered differently, and the CI bot has to take the diff out
    of each: raw chat text (prose and fenced Python) with the patch after it,
    an agent's short note with a fenced diff, a bot's fenced patch, or a bare
    diff as the whole answer.
    """
    repo = (cand.get("provenance") or {}).get("repo", "")
    raw = cand.get("raw_output")
    if raw:
        # Chat answers (GPT-O1-on-QuixBugs): the model's own text, then the
        # same fix as a patch, since our answer format is a diff.
        return "%s\n\nThe same change as a patch:\n\n```diff\n%s```\n" % (raw.rstrip(), diff)
    if "QuixBugs-bench" in repo:  # the Claude Code agent: a note, then the edit
        return "I fixed the bug with a one-line change.\n\n```diff\n%s```\n" % diff
    if "Repair-Agent" in repo:  # a pipeline that emits the file: a bare diff
        return diff
    return "```patch\n%s```\n" % diff  # a CI bot (bugfix-ci): the patch, fenced


def estimate_tokens(chars):
    """Characters / 4, the usual rough count where the source kept no usage."""
    return max(1, (chars + 3) // 4)


def build(data, out):
    cfg = load_config(data)
    progdir = os.path.join(data, "programs")
    if not os.path.isdir(progdir):
        raise BadInput("%s: no programs/ directory" % data)
    cands = read_jsonl(os.path.join(data, "candidates.jsonl"))
    truth = read_jsonl(os.path.join(data, "truth.jsonl"))
    if len(cands) != len(truth):
        raise BadInput("candidates.jsonl has %d lines, truth.jsonl %d" % (len(cands), len(truth)))
    for i, (c, t) in enumerate(zip(cands, truth), 1):
        for k in ("program", "model", "sample"):
            if c.get(k) != t.get(k):
                raise BadInput("line %d: candidates and truth differ in %s" % (i, k))
        if not isinstance(t.get("passes"), bool):
            raise BadInput("truth.jsonl line %d: passes is not true or false" % i)
        if not isinstance(c.get("diff"), str):
            raise BadInput("candidates.jsonl line %d: diff is not a string" % i)

    names = sorted(d for d in os.listdir(progdir) if os.path.isdir(os.path.join(progdir, d)))
    known = set(names)
    for i, c in enumerate(cands, 1):
        if c["program"] not in known:
            raise BadInput("candidates.jsonl line %d: no programs/%s/" % (i, c["program"]))

    if os.path.exists(out):
        shutil.rmtree(out)
    for d in ("repos", "tasks", "answers"):
        os.makedirs(os.path.join(out, d))

    bench = cfg["name"]
    tasks, heads, prompt_chars = {}, {}, {}
    for name in names:
        src = os.path.join(progdir, name)
        bug = fill(cfg["file"], name, cfg)
        if not os.path.isfile(os.path.join(src, bug)):
            raise BadInput("programs/%s/ has no %s" % (name, bug))
        repo = os.path.join(out, "repos", name)
        shutil.copytree(src, repo)  # bytes as they are (a CRLF line stays one)
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "%s: the buggy program and its test" % name)
        heads[name] = git(repo, "rev-parse", "HEAD")
        size = 0
        for f in sorted(os.listdir(src)):
            if os.path.isfile(os.path.join(src, f)):
                size += os.path.getsize(os.path.join(src, f))
        prompt_chars[name] = size
        task = {
            "id": "%s/%s" % (bench, name),
            "kind": "patch",
            "language": cfg["language"],
            "repo": {"path": os.path.abspath(repo), "base": heads[name]},
            "prompt": fill(cfg["prompt"], name, cfg),
            "tests": {"command": [fill(a, name, cfg) for a in cfg["test_command"]]},
            "context_files": [bug],
        }
        tasks[name] = task
        with open(os.path.join(out, "tasks", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(task, f)
    with open(os.path.join(out, "tasks.jsonl"), "w", encoding="utf-8") as f:
        for name in names:
            f.write(json.dumps(tasks[name]) + "\n")

    # Recordings: run k of (task, model) is that model's k-th fix in file order,
    # so `cascade replay` and mock-llm serve the samples in turn.
    runs = {}
    fixes = []
    seen_bases = {}
    bases = []
    with open(os.path.join(out, "recordings.jsonl"), "w", encoding="utf-8") as rec:
        for i, (c, t) in enumerate(zip(cands, truth)):
            name = c["program"]
            answer = wrap_answer(c, c["diff"])
            afile = os.path.join(out, "answers", "%d.md" % i)
            with open(afile, "w", encoding="utf-8", newline="") as f:
                f.write(answer)
            key = (name, c["model"])
            run = runs.get(key, 0) + 1
            runs[key] = run
            # The prompt is built from the repository by the CI bot; its size
            # is estimated from the files it quotes plus the instruction and a
            # failing test's output (about 2,000 characters).
            rec.write(json.dumps({
                "task": tasks[name]["id"], "model": c["model"], "run": run,
                "answer": answer,
                "usage": {"prompt_tokens": estimate_tokens(prompt_chars[name] + 2500),
                          "completion_tokens": estimate_tokens(len(answer))},
                "usage_estimated": True,
            }) + "\n")
            fixed = c.get("fixed_file")
            base_ref = None
            if isinstance(fixed, str):
                h = hashlib.sha256((name + "\0" + fixed).encode()).hexdigest()
                if h not in seen_bases:
                    seen_bases[h] = "fix/%d" % i
                    bases.append({"index": i, "program": name, "branch": seen_bases[h],
                                  "fixed_file": fixed})
                base_ref = seen_bases[h]
            fixes.append({"index": i, "task": tasks[name]["id"], "program": name,
                          "model": c["model"], "sample": c["sample"], "run": run,
                          "passes": t["passes"], "answer": os.path.abspath(afile),
                          "task_file": os.path.abspath(os.path.join(out, "tasks", name + ".json")),
                          "source": (c.get("provenance") or {}).get("repo", ""),
                          "raw_output": bool(c.get("raw_output")),
                          "base_branch": base_ref})

    # The recorded fixes as bases: one commit per distinct fixed program, on a
    # branch of the program's repository (the buggy commit is its parent),
    # written by one `git fast-import` per repository: hundreds of commits in
    # well under a second, where a git command per commit takes minutes.
    by_prog = {}
    for b in bases:
        by_prog.setdefault(b["program"], []).append(b)
    for name, group in by_prog.items():
        repo = os.path.join(out, "repos", name)
        path = fill(cfg["file"], name, cfg)
        stream = bytearray()
        for k, b in enumerate(group, 1):
            data = b["fixed_file"].encode()
            msg = ("%s: recorded fix %d\n" % (name, b["index"])).encode()
            stream += b"blob\nmark :%d\ndata %d\n%s\n" % (k, len(data), data)
            stream += (b"commit refs/heads/%s\nmark :%d\n"
                       b"author cascade-eval <eval@localhost> 1767225600 +0000\n"
                       b"committer cascade-eval <eval@localhost> 1767225600 +0000\n"
                       b"data %d\n%s\nfrom %s\nM 100644 :%d %s\n\n"
                       % (b["branch"].encode(), 100000 + k, len(msg), msg,
                          heads[name].encode(), k, path.encode()))
        stream += b"done\n"
        git(repo, "fast-import", "--quiet", "--done", stdin=bytes(stream))
        refs = dict(line.split(" ", 1)[::-1] for line in git(
            repo, "for-each-ref", "--format=%(objectname) %(refname)", "refs/heads/fix/"
        ).splitlines())
        for b in group:
            b["commit"] = refs["refs/heads/" + b["branch"]]
    with open(os.path.join(out, "bases.jsonl"), "w", encoding="utf-8") as f:
        for b in bases:
            f.write(json.dumps({k: b[k] for k in ("index", "program", "branch", "commit")}) + "\n")
    # The flaky check: each recorded fix that fails its tests becomes the base
    # of a task, so the baseline runs the failing tests twice and must find the
    # same outcome both times (the data says every run was stable). The only
    # model, "noop", answers with no diff, so no patch is ever tried.
    os.makedirs(os.path.join(out, "flaky"))
    with open(os.path.join(out, "flaky", "models.json"), "w", encoding="utf-8") as f:
        json.dump({"providers": {"none": {"api": "openai", "base_url": "http://127.0.0.1:9/v1",
                                          "key_env": None}},
                   "models": {"noop": {"provider": "none", "id": "noop",
                                       "input_usd_per_mtok": 0, "output_usd_per_mtok": 0,
                                       "context": 1000000, "max_tokens": 16}}}, f)
    with open(os.path.join(out, "flaky", "flaky-check.json"), "w", encoding="utf-8") as f:
        json.dump({"name": "flaky-check", "match": {"kind": "patch"},
                   "validators": ["patch", "syntax", "tests"],
                   "tiers": [{"model": "noop", "attempts": 1}]}, f)
    with open(os.path.join(out, "flaky", "tasks.jsonl"), "w", encoding="utf-8") as ft, \
            open(os.path.join(out, "flaky", "recordings.jsonl"), "w", encoding="utf-8") as fr:
        done = set()
        for x in fixes:
            if x["passes"] or not x["base_branch"] or x["base_branch"] in done:
                continue
            done.add(x["base_branch"])
            b = next(b for b in bases if b["branch"] == x["base_branch"])
            task = dict(tasks[x["program"]])
            task["id"] = "%s@%s" % (task["id"], b["branch"])
            task["repo"] = {"path": task["repo"]["path"], "base": b["commit"]}
            task["fix"] = {"index": x["index"], "model": x["model"], "sample": x["sample"]}
            ft.write(json.dumps(task) + "\n")
            fr.write(json.dumps({"task": task["id"], "model": "noop", "run": 1,
                                 "answer": "No change.",
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1}}) + "\n")
    with open(os.path.join(out, "fixes.jsonl"), "w", encoding="utf-8") as f:
        for x in fixes:
            f.write(json.dumps(x) + "\n")
    models = sorted({c["model"] for c in cands})
    return {"benchmark": bench, "programs": len(names), "fixes": len(fixes),
            "models": len(models), "distinct_fixed_files": len(bases)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", help="the benchmark directory (programs/, candidates.jsonl, truth.jsonl)")
    ap.add_argument("out", help="where to write (removed first)")
    a = ap.parse_args()
    try:
        summary = build(a.data, a.out)
    except (BadInput, OSError, RuntimeError) as e:
        print("cibot load: %s" % e, file=sys.stderr)
        return 2
    print("cibot load: %(benchmark)s: %(programs)d programs, %(fixes)d fixes by %(models)d "
          "models, %(distinct_fixed_files)d distinct fixed files" % summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
