# Issue 6: the cost story. `make eval DATA=../shared/data` converts HumanEval
# and three models' recorded answers, replays the plans with the real
# validators, checks the table against the issue's reference, cross-checks
# one plan over HTTP against mock-llm, tunes a plan and writes an HTML report
# (tools/eval/eval.sh says how). Not part of `make test`.
#
# `make report-demo` writes the HTML report of the demo batch (run `make demo`
# first) to build/demo/report.html.

EVAL_TARGETS += eval-cost
.PHONY: eval-cost report-demo

eval-cost:
	@$(MAKE) --no-print-directory all
	@sh tools/eval/eval.sh "$(DATA)" $(B)

report-demo:
	@$(MAKE) --no-print-directory all
	@test -s build/demo/results.jsonl || { echo "report-demo: run make demo first" >&2; exit 1; }
	$(B)/cascade report build/demo/results.jsonl --models fixtures/demo/models.json \
	  --cascades fixtures/demo/cascades --tasks fixtures/demo/tasks.jsonl \
	  --html build/demo/report.html

# The HTML test decodes the screenshot's PNG itself.
$(B)/tests/test_report: LDLIBS += -lz
