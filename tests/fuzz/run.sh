#!/bin/sh
# Runs the fuzz targets built in $FUZZ_DIR (mk/fuzz.mk).
#
#   run.sh fuzz SECONDS JOBS TARGET...     each target SECONDS seconds
#   run.sh regress 0 JOBS TARGET...        each target once over its inputs
#
# Inputs of a target: tests/fuzz/corpus/<t>/ (seeds) and tests/fuzz/regress/<t>/
# (one file per finding ever fixed); tests/fuzz/dict/<t>.dict is its dictionary. A fuzz run also reads and grows
# $FUZZ_DIR/corpus/<t>/, and leaves a crash, leak, timeout or out-of-memory
# input in $FUZZ_DIR/findings/<t>/ with the log in $FUZZ_DIR/logs/<t>.fuzz.log.
# Prints one line per target (executions per second and corpus size, from
# libFuzzer's own final statistics) and fails when any target failed.
set -u
mode=$1
seconds=$2
jobs=$3
shift 3
dir=${FUZZ_DIR:-build/fuzz}
mkdir -p "$dir/logs"
# The stack of a UBSan finding, not only its line.
UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export UBSAN_OPTIONS
# Leaks inside third-party libraries that our code cannot free (see the file).
LSAN_OPTIONS="suppressions=$(pwd)/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
asan_options=${ASAN_OPTIONS:-}

# One target; prints its summary line; exit status is the target's.
one() {
    t=$1
    log="$dir/logs/$t.$mode.log"
    inputs=""
    # libgit2 has no frame pointers: the slow unwinder gives leaks inside it
    # the whole stack, which the suppressions (tests/fuzz/lsan.supp) match.
    ASAN_OPTIONS=$asan_options
    case $t in
    vcs_*) ASAN_OPTIONS="fast_unwind_on_malloc=0${asan_options:+:$asan_options}" ;;
    esac
    export ASAN_OPTIONS
    for d in "tests/fuzz/corpus/$t" "tests/fuzz/regress/$t"; do
        [ -d "$d" ] && inputs="$inputs $d"
    done
    # A bounded time per input and a bounded memory: a hang or a runaway
    # allocation is a finding like a crash. The time is wall-clock, so it is
    # generous: on a loaded machine a quick input can wait seconds for a CPU.
    common="-timeout=${FUZZ_TIMEOUT:-60} -rss_limit_mb=2048 -malloc_limit_mb=1024"
    if [ "$mode" = regress ]; then
        # Files, not folders: each runs once and nothing is written anywhere.
        files=$(for d in $inputs; do find "$d" -type f ! -name '.*'; done | sort)
        n=$(printf '%s\n' "$files" | grep -c .)
        # shellcheck disable=SC2086
        if "$dir/$t" $common $files >"$log" 2>&1; then
            echo "fuzz-regress: $t: $n inputs ok"
            return 0
        fi
        echo "fuzz-regress: $t: FAILED (log: $log)"
        tail -n 40 "$log"
        return 1
    fi
    rm -rf "$dir/findings/$t"
    mkdir -p "$dir/corpus/$t" "$dir/findings/$t"
    # Tokens the fuzzer cannot learn from coverage (the JSON parser is not instrumented).
    [ -f "tests/fuzz/dict/$t.dict" ] && common="$common -dict=tests/fuzz/dict/$t.dict"
    # shellcheck disable=SC2086
    "$dir/$t" $common -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="$dir/findings/$t/" "$dir/corpus/$t" $inputs >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    corp=$(grep -o 'corp: [0-9]*/[0-9A-Za-z]*' "$log" | tail -n 1 | cut -d' ' -f2)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t: ${seconds}s, ${execs:-?} runs, ${rate:-?} exec/s, corpus ${corp:-?}," \
            "cov ${cov:-?}"
        return 0
    fi
    echo "fuzz: $t: FINDING (exit $rc); input in $dir/findings/$t/, log: $log"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 5
    grep -E '^    #[0-9]+ ' "$log" | head -n 12
    return 1
}

failed=""
if [ "$jobs" -gt 1 ]; then
    # $jobs lanes, targets dealt to them in turn; each lane runs its share in
    # order, so at most $jobs targets run at once. Summaries go through files.
    rm -f "$dir/logs/"*.status
    lane=0
    while [ "$lane" -lt "$jobs" ]; do
        (
            i=0
            for t in "$@"; do
                if [ $((i % jobs)) -eq "$lane" ]; then
                    one "$t" >"$dir/logs/$t.summary"
                    echo $? >"$dir/logs/$t.status"
                fi
                i=$((i + 1))
            done
        ) &
        lane=$((lane + 1))
    done
    wait
    for t in "$@"; do
        cat "$dir/logs/$t.summary"
        [ "$(cat "$dir/logs/$t.status" 2>/dev/null)" = 0 ] || failed="$failed $t"
    done
else
    for t in "$@"; do
        one "$t" || failed="$failed $t"
    done
fi
if [ -n "$failed" ]; then
    echo "$mode: failed:$failed"
    exit 1
fi
echo "$mode: $# targets, no finding"
