#!/bin/sh
# The boundaries between the rooms of the house, checked rather than hoped
# for (README "Layout"). Every quoted #include of every .c and .h file is
# resolved to a path from the repository root (a bare name is the including
# file's own folder; anything else is written from the root, and "../" is
# refused), and each rule below is checked against what a file includes,
# directly or through other project headers.
#
#   sh tests/boundaries.sh [--quick] [ROOT]
#
# checks the tree at ROOT (default: this repository), then proves each rule
# bites: for every rule, a copy of the tree gets one forbidden include, and
# the check must fail naming that rule (--quick skips that part).
#
# Exit 0 when every rule holds, 1 when one is broken (each break is printed as
# "FILE: includes TARGET (via ...): RULE"), 2 on usage errors.

# A rule: files matching FROM (an extended regex on the path) may reach, through
# includes, only paths matching ONLY (empty: anything) and none matching NOT
# (empty: nothing forbidden). DEPTH is "direct" (the file's own includes) or
# "all" (everything reached through project headers).
rules() {
    cat <<'EOF'
lib;^lib/;^lib/;;all;lib/ depends on nothing of the project
vcs;^vcs/;^(lib|vcs)/;;all;vcs/ depends on lib/ only
validators;^validators/;^(lib|vcs|validators)/;;all;validators/ depends on lib/ and vcs/ only
mock;^fixtures/mock-llm/;^(lib|fixtures/mock-llm)/;;all;the mock depends on lib/ only
pure;^worker/(router|task|intake|policy)\.[ch]$;;^worker/(net|store|sinks|providers)/;all;the router, task and intake do no I/O
wire;^worker/(run|intake|answers|router|task|config|cost)\.[ch]$;;^worker/providers/;direct;only net/ sees wire formats
driver;^worker/(eval|obs)/;;^worker/run\.h$;all;eval/ and obs/ never reach into the driver
EOF
}

# Prints "FILE TARGET" for every quoted include under the current directory.
edges() {
    find lib vcs validators worker fixtures/mock-llm tests tools \
        -name '*.[ch]' -type f 2>/dev/null | sort | while read -r f; do
        sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f" |
            while read -r inc; do
                case $inc in
                ../* | */../*) echo "$f ../ $inc" ;;
                */*) echo "$f $inc" ;;
                *) echo "$f $(dirname "$f")/$inc" ;;
                esac
            done
    done
}

# Checks the tree in the current directory; prints each break, returns non-zero on
# any (or when awk itself fails).
check() {
    edges >"$tmp/edges" || return 2
    rules >"$tmp/rules"
    awk -v rulesfile="$tmp/rules" '
        BEGIN {
                        while ((getline line < rulesfile) > 0) {
                split(line, fld, ";")
                nr++; name[nr] = fld[1]; from[nr] = fld[2]; only[nr] = fld[3]
                not[nr] = fld[4]; depth[nr] = fld[5]; why[nr] = fld[6]
            }
            FS = " "
        }
        $2 == "../" { print $1 ": includes \"" $3 "\": write includes from the root, not with ../"; bad = 1; next }
        { files[$1] = 1; nout[$1]++; out[$1, nout[$1]] = $2 }
        # Walks what f reaches, recording for each target the path that reached it.
        function walk(f, via, i, t) {
            for (i = 1; i <= nout[f]; i++) {
                t = out[f, i]
                if (t in seen) continue
                seen[t] = via == "" ? "" : via
                reach[++nreach] = t
                if (deep) walk(t, via == "" ? t : via)
            }
        }
        END {
            for (f in files) {
                for (r = 1; r <= nr; r++) {
                    if (f !~ from[r]) continue
                    delete seen; nreach = 0; deep = depth[r] == "all"
                    walk(f, "")
                    for (k = 1; k <= nreach; k++) {
                        t = reach[k]
                        if ((only[r] != "" && t !~ only[r]) || (not[r] != "" && t ~ not[r])) {
                            printf "%s: includes %s%s: %s [%s]\n", f, t,
                                seen[t] == "" ? "" : " (via " seen[t] ")", why[r], name[r]
                            bad = 1
                        }
                    }
                }
            }
            exit bad
        }' "$tmp/edges" >"$tmp/raw"
    st=$?
    sort "$tmp/raw"
    return $st
}

run_check() {
    check >"$tmp/report"
    st=$?
    cat "$tmp/report"
    [ $st -eq 0 ] && [ ! -s "$tmp/report" ]
}

tmp=$(mktemp -d) || exit 2
trap 'rm -rf "$tmp"' EXIT INT TERM

self_test=1
root=$(cd "$(dirname "$0")/.." && pwd)
for a in "$@"; do
    case $a in
    --quick) self_test=0 ;;
    -*) echo "usage: sh tests/boundaries.sh [--quick] [ROOT]" >&2; exit 2 ;;
    *) root=$a ;;
    esac
done
cd "$root" || exit 2

if ! run_check; then
    echo "boundaries: broken (rules in tests/boundaries.sh)"
    echo "0 passed, 1 failed"
    exit 1
fi
nfiles=$(cut -d' ' -f1 "$tmp/edges" | sort -u | wc -l)
echo "boundaries: $(rules | wc -l) rules hold over $nfiles files"

[ $self_test -eq 1 ] || { echo "1 passed, 0 failed"; exit 0; }

# One forbidden include per rule, each into a fresh copy of the tree; the
# check must fail and name the rule. A rule that cannot bite is a defect.
copy=$tmp/tree
passed=1
failed=0
while IFS=';' read -r name _ _ _ _ _; do
    case $name in
    lib) victim=lib/planted.c inc=worker/config.h ;;
    vcs) victim=vcs/planted.c inc=worker/run.h ;;
    validators) victim=validators/planted.c inc=worker/router.h ;;
    mock) victim=fixtures/mock-llm/planted.c inc=worker/config.h ;;
    pure) victim=worker/router.c inc=worker/store/journal.h ;;
    wire) victim=worker/run.c inc=worker/providers/prov.h ;;
    driver) victim=worker/eval/planted.c inc=worker/run.h ;;
    *) echo "self-test: no case for rule $name"; failed=$((failed + 1)); continue ;;
    esac
    rm -rf "$copy" && mkdir -p "$copy"
    find lib vcs validators worker fixtures/mock-llm tests tools -name '*.[ch]' 2>/dev/null |
        tar cf - -T - | tar xf - -C "$copy"
    mkdir -p "$copy/$(dirname "$victim")"
    printf '#include "%s"\n' "$inc" >>"$copy/$victim"
    if (cd "$copy" && check) | grep -q "\[$name\]"; then
        echo "self-test: rule $name bites ($victim including $inc is refused)"
        passed=$((passed + 1))
    else
        echo "self-test: rule $name did NOT catch $victim including $inc"
        failed=$((failed + 1))
    fi
done <<EOF
$(rules)
EOF
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
