#!/bin/sh
# Runs each test binary as its own process with a time limit and counts the
# binaries that pass. Output of each goes straight through.
passed=0
failed=0
failed_names=""
for t in "$@"; do
    echo "== $(basename "$t")"
    if timeout -k 5 300 "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $(basename "$t")"
    fi
done
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
