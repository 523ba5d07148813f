# Speed and scale (issue 13): `make bench-scale` (part of `make bench`) runs
# tools/bench/bench.py, which measures `cascade run` against build/mock-llm
# beside a direct client (tools/bench/direct.c, libcurl kept alive) and the
# Portkey gateway (npm, pinned in tools/bench/portkey.lock, fetched into
# build/bench/), prints one table and writes build/bench/results.json.
# BENCH_QUICK=1 runs every row with fewer tasks (a smoke run, not a figure).
#
# Included from the Makefile.

BENCH_DIR := build/bench
BENCH_DIRECT_BIN := $(B)/tools/bench-direct
BENCH_SIMILAR_BIN := $(B)/tools/bench-similar
PORTKEY_LOCK := tools/bench/portkey.lock

BENCH_TARGETS += bench-scale
.PHONY: bench-scale bench-portkey

# bench-validators is named here, not by $(VAL_BENCH_BIN): mk/validators.mk is
# read after this file, and a prerequisite is expanded when its rule is read.
bench-scale: $(B)/cascade $(B)/mock-llm $(BENCH_DIRECT_BIN) $(B)/tools/bench-validators \
             $(BENCH_SIMILAR_BIN)
	@-$(MAKE) --no-print-directory bench-portkey
	@python3 tools/bench/bench.py --bin $(B) --out $(BENCH_DIR) $(if $(BENCH_QUICK),--quick)

# The gateway's tarball is checked against the sha256 in the lock, like the
# grammars; its dependencies come from npm as its package.json asks
# (no install scripts run). A failure here leaves the Portkey rows saying so.
bench-portkey: $(BENCH_DIR)/portkey/.installed

$(BENCH_DIR)/portkey/.installed: $(PORTKEY_LOCK)
	@mkdir -p $(BENCH_DIR)
	@set -e; cd $(BENCH_DIR); \
	grep -v '^#' ../../$(PORTKEY_LOCK) | while read name ver sum; do \
	  [ -n "$$name" ] || continue; \
	  tgz="$$(echo "$$name" | sed 's|^@||; s|/|-|')-$$ver.tgz"; \
	  if [ ! -f "$$tgz" ] || ! echo "$$sum  $$tgz" | sha256sum -c --quiet - 2>/dev/null; then \
	    rm -f "$$tgz"; npm pack --silent "$$name@$$ver" >/dev/null; \
	  fi; \
	  echo "$$sum  $$tgz" | sha256sum -c --quiet - \
	    || { echo "bench: sha256 mismatch for $$tgz" >&2; exit 1; }; \
	  rm -rf portkey; mkdir portkey; tar xzf "$$tgz" -C portkey --strip-components=1; \
	  (cd portkey && npm install --omit=dev --ignore-scripts --no-audit --no-fund --silent); \
	done; \
	touch portkey/.installed

$(BENCH_DIRECT_BIN): $(B)/obj/tools/bench/direct.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The semantic start tier's nearest-neighbour search (worker/similar.c).
$(BENCH_SIMILAR_BIN): $(B)/obj/tools/bench/similar_bench.o $(B)/libcore.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
