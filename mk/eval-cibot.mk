# The CI bot on real bugs (issue 10, item 8): `make eval-cibot DATA=../shared/data`
# loads DATA/quixbugs (or CIBOT_BENCH=any directory of the same shape, see
# README "make eval-cibot") into git repositories and patch tasks under
# build/eval-cibot/, replays the cascades in tools/cibot/cascades/ on the
# recorded fixes, validates every recorded fix, runs the flaky check, and
# writes build/eval-cibot/table.json (tools/cibot/eval.sh says how). Not part
# of `make test`; tests/eval_cibot.sh runs the same on fixtures/eval/cibot/.
#
# Included from the Makefile.

CIBOT_BENCH ?= $(DATA)/quixbugs
CIBOT_CONF ?= tools/cibot

EVAL_TARGETS += eval-cibot
.PHONY: eval-cibot

eval-cibot:
	@$(MAKE) --no-print-directory all
	@sh tools/cibot/eval.sh "$(CIBOT_BENCH)" $(B) build/eval-cibot "$(CIBOT_CONF)"
