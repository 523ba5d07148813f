# Issue 11: classification that escalates on doubt, measured on 11 real
# models' answers. `make eval-classify DATA=../shared/data` converts
# RouterBench's ARC-Challenge and Winogrande answers, replays each model
# alone, the format-only chain and the agreement plans, tunes a plan for
# accuracy on a fit half and reports the held-out half beside always gpt-4,
# writes build/eval-classify/table.json and HTML reports, then runs the 1,500
# NLBSE issues through a three-tier classify cascade against mock-llm with
# synthetic stand-in answers, timed (tools/classify/eval.sh says how). Not
# part of `make test`.

EVAL_TARGETS += eval-classify
.PHONY: eval-classify

eval-classify:
	@$(MAKE) --no-print-directory all
	@sh tools/classify/eval.sh "$(DATA)" $(B)
