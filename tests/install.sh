#!/bin/sh
# `make install` (issue 15, item 6): into a scratch DESTDIR, the documented
# layout (README "Install"); the man page renders with `man -l`, has a section
# per subcommand, and names every option each `cascade COMMAND --help` lists,
# since it is made from that text; the installed binary prints its version
# and its libraries'.
#
#   sh tests/install.sh        (from make test; SRC_DIR is the repository)
set -u
src=${SRC_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
dest=$(mktemp -d) || exit 1
trap 'rm -rf "$dest"' EXIT
fail=0
no() {
    echo "install: $*" >&2
    fail=1
}

make -s --no-print-directory -C "$src" install DESTDIR="$dest" PREFIX=/usr/local >"$dest/make.log" 2>&1 ||
    { cat "$dest/make.log" >&2; no "make install failed"; exit 1; }
p=$dest/usr/local
for f in bin/cascade bin/mock-llm share/man/man1/cascade.1 \
    share/cascade/cascades/models.json share/cascade/cascades/python-code.json \
    share/cascade/examples/quickstart.md share/cascade/examples/deployment.md \
    share/cascade/examples/cascade-worker.service share/cascade/examples/prometheus.yml; do
    [ -f "$p/$f" ] || no "missing $f"
done
[ -x "$p/bin/cascade" ] || no "bin/cascade is not executable"

man=$dest/man.txt
MANWIDTH=200 man -l "$p/share/man/man1/cascade.1" >"$man" 2>"$dest/man.err" || no "man -l failed: $(cat "$dest/man.err")"
grep -q '^NAME' "$man" || no "the page has no NAME"
for c in $("$p/bin/cascade" help | sed -n '/^commands:/,$p' | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' |
    grep -v -x -e help -e version); do
    up=$(echo "$c" | tr a-z A-Z)
    grep -q "^CASCADE $up" "$man" || no "no section for $c"
    for o in $("$p/bin/cascade" "$c" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
        grep -q -- "$o" "$man" || no "$c: $o is in --help but not in the man page"
    done
done

v=$("$p/bin/cascade" --version)
for lib in '^cascade [0-9]' '^libuv [0-9]' '^libcurl [0-9]' '^libgit2 [0-9]' '^tree-sitter [0-9]' '^SQLite [0-9]'; do
    printf '%s\n' "$v" | grep -q "$lib" || no "--version has no line matching $lib"
done
[ "$fail" -eq 0 ] && echo "install: layout, man page and --version as documented"
exit "$fail"
