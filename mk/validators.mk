# Validators (issue 3): `make eval-validators` measures the syntax and tests
# validators against the recorded outcomes of the official HumanEval tests;
# `make bench-validators` (its rows are part of `make bench`'s table) times the syntax validator
# against a bare tree-sitter loop and a sandboxed `true` against a bare
# fork/exec of it. Both runners are C programs linked with libcore.
#
# Included from the Makefile.

VAL_EVAL_DIR := build/eval-validators
VAL_EVAL_BIN := $(B)/tools/eval-validators
VAL_BENCH_BIN := $(B)/tools/bench-validators
# Sandboxes at once for the evaluation; empty: twice the number of CPUs.
EVAL_JOBS ?=

EVAL_TARGETS += eval-validators
.PHONY: eval-validators bench-validators

eval-validators: $(VAL_EVAL_BIN)
	@for f in HumanEval.jsonl.gz humaneval_results_3models.jsonl; do \
	  [ -f "$(DATA)/$$f" ] || { echo "eval-validators: $(DATA)/$$f not found; the shared data" \
	    "folder is absent (run with DATA=path/to/shared/data)" >&2; exit 2; }; \
	done
	@mkdir -p $(VAL_EVAL_DIR)
	@python3 tools/validators/eval_prep.py "$(DATA)" $(VAL_EVAL_DIR)/cases.jsonl
	$(VAL_EVAL_BIN) $(if $(EVAL_JOBS),--jobs $(EVAL_JOBS)) --out $(VAL_EVAL_DIR)/results.jsonl \
	  $(VAL_EVAL_DIR)/cases.jsonl

bench-validators: $(VAL_BENCH_BIN)
	$(VAL_BENCH_BIN)

$(B)/tools/%-validators: $(B)/obj/tools/validators/%_validators.o $(B)/libcore.a $(GRAMMAR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
