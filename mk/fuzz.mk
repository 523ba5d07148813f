# Fuzzing: libFuzzer targets (tests/fuzz/fuzz_<target>.c) built with clang,
# AddressSanitizer and UBSan into build/fuzz/, the core compiled again there
# with the fuzzer's coverage instrumentation.
#
#   make fuzz FUZZ_SECONDS=N   runs every target N seconds from its seeds
#                              (tests/fuzz/corpus/<target>/) and its
#                              regression inputs (tests/fuzz/regress/<target>/);
#                              fails on any finding, left in build/fuzz/findings/
#   make fuzz-regress          runs every target once over those inputs
#                              (part of `make test`)
#
# FUZZ_TARGETS="a b" limits both to some targets; FUZZ_JOBS=N runs N at once;
# FUZZ_TIMEOUT=S is the wall-clock seconds one input may take [60] (raise it
# on a loaded machine, where a quick input can wait long for a CPU).
# What a run found new is kept in build/fuzz/corpus/<target>/, so the next
# run starts from there; the seeds in the tree are never written.

# Debian's clang, its libFuzzer and sanitizer runtimes (libclang-rt), and
# llvm for llvm-symbolizer, which names the lines of a finding's stack.
DEB_PKGS += clang libclang-rt-14-dev llvm

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_JOBS    ?= 1
FUZZ_TIMEOUT ?= 60
FB           := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(FUZZ_SAN)

FUZZ_ALL     := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_BIN     := $(FUZZ_ALL:%=$(FB)/%)
FUZZ_CORE_OBJ := $(CORE_SRC:%.c=$(FB)/obj/%.o)
# The mock's routes and faults; server.c is compiled into its target itself
# (its http_parser callbacks are file-local), main.c is the program's.
FUZZ_MOCK_OBJ := $(patsubst %.c,$(FB)/obj/%.o, \
                   $(filter-out fixtures/mock-llm/main.c fixtures/mock-llm/server.c,$(MOCK_SRC)))

.PHONY: fuzz fuzz-build fuzz-regress

fuzz-build: deps-debs $(FUZZ_BIN)

fuzz: fuzz-build
	@FUZZ_DIR=$(FB) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) sh tests/fuzz/run.sh fuzz "$(FUZZ_SECONDS)" "$(FUZZ_JOBS)" $(FUZZ_TARGETS)

fuzz-regress: fuzz-build
	@FUZZ_DIR=$(FB) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) sh tests/fuzz/run.sh regress 0 "$(FUZZ_JOBS)" $(FUZZ_TARGETS)

# `make test` runs the regression inputs too.
test: fuzz-regress

# Objects get the coverage instrumentation; only the targets link libFuzzer's main.
$(FB)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FB)/libcore.a: $(FUZZ_CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

# lib/embed.o as an object too: embeddings.c comes after libcore.a on the link line.
$(FB)/mock_request: $(FUZZ_MOCK_OBJ) $(FB)/obj/lib/embed.o

$(FUZZ_BIN): $(FB)/%: $(FB)/obj/tests/fuzz/fuzz_%.o $(FB)/obj/tests/fuzz/fuzz.o $(FB)/libcore.a \
                      $(GRAMMAR_LIB)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

-include $(shell find $(FB)/obj -name '*.d' 2>/dev/null)
