#!/bin/sh
# Writes cascade(1) on stdout from the program's own help: `cascade help` for
# the description and the list of commands, `cascade COMMAND --help` for each
# command's section. The help text is the one source, so the page and
# `--help` cannot drift apart (make builds the page from the binary it built).
#
#   sh tools/man.sh build/cascade > build/cascade.1
set -eu
bin=$1

# groff: backslashes escaped, a leading . or ' neutralised, - made a real minus.
esc() {
    sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/" -e 's/-/\\-/g'
}

version=$("$bin" --version | sed -n '1s/^cascade //p')
help=$("$bin" help)
commands=$(printf '%s\n' "$help" | sed -n '/^commands:/,$p' | sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' |
    grep -v -x -e help -e version)

cat <<HEAD
.TH CASCADE 1 "" "cascade $version" "User Commands"
.SH NAME
cascade \\- send coding tasks to language models cheapest first, validate each answer, climb only on failure
.SH SYNOPSIS
.B cascade
.I command
.RI [ options ]
.br
.B cascade
.I command
.B \\-\\-help
.br
.B cascade \\-\\-version
.SH DESCRIPTION
HEAD
printf '%s\n' "$help" | sed -n '3,/^commands:/p' | sed '$d' | esc
echo ".SH COMMANDS"
printf '%s\n' "$help" | sed -n '/^commands:/,$p' | sed -n 's/^  \([a-z][a-z]*\) *\(.*\)/\1\t\2/p' |
    while IFS="$(printf '\t')" read -r name summary; do
        printf '.TP\n.B %s\n%s\n' "$name" "$(printf '%s\n' "$summary" | esc)"
    done
for c in $commands; do
    printf '.SH "CASCADE %s"\n.nf\n' "$(printf '%s' "$c" | tr a-z A-Z)"
    "$bin" "$c" --help | esc
    printf '.fi\n'
done
cat <<'TAIL'
.SH ENVIRONMENT
.TP
.B NO_COLOR
set and not empty: no colour on a terminal (see
.BR "cascade run \-\-log\-format" ).
.TP
.I key_env
each provider's API key, in the variable its models file names; models files may use
.BR ${VAR} .
.SH FILES
.TP
.I PREFIX/share/cascade/cascades/
the example cascades and models file.
.TP
.I PREFIX/share/cascade/examples/
a systemd unit, a quick start with a real provider, a Redis multi-machine deployment with
a Prometheus scrape configuration.
.SH "SEE ALSO"
The README of the source tree, for the formats of tasks, cascades, models and results.
TAIL
