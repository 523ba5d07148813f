#!/usr/bin/env python3
"""Rewrites codellama's recorded answers (build/eval/recordings.jsonl, run 1)
as CodeLlama really writes them: the code in [PYTHON] ... [/PYTHON] tags and a
[TESTS] block after, instead of the ```python fence convert.py puts around it.

    python3 tools/eval/codellama_tags.py build/eval/recordings.jsonl OUT.jsonl

Replaying OUT with the codellama cascade measures code extraction on that
format (README, "make eval").
"""
import json
import re
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    n = 0
    with open(src) as f, open(dst, "w") as out:
        for line in f:
            r = json.loads(line)
            if r["model"] != "codellama-34b-instruct" or r["run"] != 1:
                continue
            m = re.search(r"```python\n(.*?)```", r["answer"], re.S)
            if not m:
                continue
            r["answer"] = ("[PYTHON]\n" + m.group(1) + "[/PYTHON]\n[TESTS]\n# Test case 1:\n"
                           "assert True\n[/TESTS]\n")
            out.write(json.dumps(r) + "\n")
            n += 1
    print("codellama_tags: %d answers in [PYTHON] tags -> %s" % (n, dst))


if __name__ == "__main__":
    main()
