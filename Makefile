# cascade: build, test, demo. `make demo` and `make test` install what is
# missing first (Debian packages, tree-sitter grammars from npm), so a fresh
# Debian 12 machine needs nothing else. SANITIZE=1 builds everything with
# AddressSanitizer and UBSan into build/san/.

# The rules say gcc; make's built-in default (cc) is replaced, an explicit CC= is kept.
ifeq ($(origin CC),default)
CC      := gcc
endif
PKGS    := libuv libcurl libcjson libgit2 tree-sitter sqlite3 hiredis
DEB_PKGS := build-essential pkg-config libuv1-dev libcurl4-openssl-dev libcjson-dev \
            libgit2-dev libtree-sitter-dev libsqlite3-dev libhttp-parser-dev \
            libcmocka-dev bubblewrap python3 ca-certificates curl \
            chromium zlib1g-dev libhiredis-dev redis-server clang-format cppcheck \
            git python3-pytest valgrind

ifeq ($(SANITIZE),1)
B       := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
B       := build
SANFLAGS :=
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(SANFLAGS)
CPPFLAGS += -I. $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lm
LDFLAGS += $(SANFLAGS)

GRAMMAR_LIB := build/grammars/libgrammars.a

# Everything in lib/, vcs/, validators/ and worker/ except the entry point
# goes into a library that the tests link as well. Includes across folders
# are written from the repository root ("lib/util.h"), hence -I.
CORE_SRC := $(filter-out worker/main.c,$(wildcard lib/*.c vcs/*.c validators/*.c \
                validators/*/*.c worker/*.c worker/*/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(B)/obj/%.o)
MOCK_SRC := $(wildcard fixtures/mock-llm/*.c)
MOCK_OBJ := $(MOCK_SRC:%.c=$(B)/obj/%.o) $(patsubst %.c,$(B)/obj/%.o,$(wildcard lib/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(B)/tests/%)

.PHONY: all deps deps-debs grammars test demo clean lint
# Keep intermediate objects (tests/harness.o) so nothing rebuilds needlessly.
.SECONDARY:
.DEFAULT_GOAL := all

all: $(B)/cascade $(B)/mock-llm

# ---- dependencies --------------------------------------------------------

# Installs only what is missing, so it is quick when everything is present.
# npm comes with some Node.js builds (nodesource); Debian's npm package would
# conflict with those, so it is installed only when no npm is on PATH.
deps: deps-debs
	@$(MAKE) --no-print-directory grammars

deps-debs:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: need root to install:$$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Each grammar is fetched with `npm pack`, checked against the sha256 in
# validators/grammars.lock, unpacked and compiled with its own src/ first on
# the include path (grammars ship their own tree_sitter/parser.h). A package
# may hold several grammars in subfolders (typescript/src and tsx/src), each
# compiled the same way; the compiles run in parallel, as the big parsers
# (C++, TypeScript) take most of a minute each.
grammars: $(GRAMMAR_LIB)

$(GRAMMAR_LIB): validators/grammars.lock
	@mkdir -p build/grammars
	@set -e; cd build/grammars; \
	grep -v '^#' ../../validators/grammars.lock | while read name ver sum; do \
	  [ -n "$$name" ] || continue; \
	  tgz="$$name-$$ver.tgz"; \
	  if [ ! -f "$$tgz" ] || ! echo "$$sum  $$tgz" | sha256sum -c --quiet - 2>/dev/null; then \
	    rm -f "$$tgz"; npm pack --silent "$$name@$$ver" >/dev/null; \
	  fi; \
	  echo "$$sum  $$tgz" | sha256sum -c --quiet - \
	    || { echo "grammars: sha256 mismatch for $$tgz" >&2; exit 1; }; \
	  rm -rf "$$name"; mkdir "$$name"; tar xzf "$$tgz" -C "$$name" --strip-components=1; \
	  for src in "$$name"/src "$$name"/*/src; do \
	    [ -f "$$src/parser.c" ] || continue; \
	    sub=$$(dirname "$$src" | sed "s|^$$name||; s|/|-|g"); \
	    for c in parser scanner; do \
	      [ -f "$$src/$$c.c" ] || continue; \
	      echo "$(CC) -O2 -g -fPIC -w -I $$src -c $$src/$$c.c -o $$name$$sub-$$c.o"; \
	    done; \
	  done; \
	done > compile.list; \
	xargs -P "$$(nproc)" -I{} sh -c '{}' < compile.list; \
	rm -f compile.list; \
	rm -f libgrammars.a; ar rcs libgrammars.a *.o
	@echo "grammars: $$(ls build/grammars/*.tgz | wc -l) grammars in $(GRAMMAR_LIB)"

# ---- build -----------------------------------------------------------------

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/libcore.a: $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/cascade: $(B)/obj/worker/main.o $(B)/libcore.a $(GRAMMAR_LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/mock-llm: $(MOCK_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# tests/harness.c is linked into every test: the end-to-end helpers.
$(B)/tests/%: $(B)/obj/tests/%.o $(B)/obj/tests/harness.o $(B)/libcore.a $(GRAMMAR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# Data-driven targets (evaluation, conformance, benchmarks) live in mk/*.mk,
# one fragment per subsystem. DATA is the shared real-data folder; targets
# that need it say so clearly when it is absent.
DATA ?= ../shared/data
include $(sort $(wildcard mk/*.mk))

# The C tools of the fragments are built by `make test` too, so a change to
# what they link cannot break them unseen.
TOOL_BIN := $(SCHEMA_CONFORMANCE_BIN) $(VAL_EVAL_BIN) $(VAL_BENCH_BIN) $(BENCH_DIRECT_BIN)

.PHONY: conformance bench eval
conformance: $(CONFORMANCE_TARGETS)
bench: $(BENCH_TARGETS)
eval: $(EVAL_TARGETS)

# ---- test and demo ---------------------------------------------------------

# Every test binary is its own process with a timeout; the last line is the
# plain "N passed, N failed" count of test binaries.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN) $(TOOL_BIN)
	@CASCADE_BIN=$(CURDIR)/$(B)/cascade MOCK_BIN=$(CURDIR)/$(B)/mock-llm \
	  SRC_DIR=$(CURDIR) sh tests/run.sh tests/boundaries.sh tests/eval_cibot.sh $(TEST_BIN)

demo: deps
	@$(MAKE) --no-print-directory all
	@sh fixtures/demo.sh build

# The format check (the repository's .clang-format) and cppcheck, on every
# tracked C file; .ci/run runs it first.
lint: deps-debs
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	  --suppress=missingIncludeSystem -I . $$(git ls-files '*.c')

clean:
	rm -rf build
