# Conformance with the official npm clients (issue 4, item 7): the pinned
# openai, @anthropic-ai/sdk and @google/genai from tests/conformance are
# installed into build/conformance (npm registry only, scripts off), then
# tests/conformance/conformance.test.mjs points each at the mock and fails on
# any failed case. It also writes build/conformance/official-requests.json,
# the request each client sends for one fixed prompt. tests/conformance/
# batch.test.mjs does the same for the three clients' batch APIs (issue 14,
# part 6) and writes build/conformance/official-batch-requests.json.
#
# conformance-compare then sends the same prompt through our own client
# (`cascade run` against the mock, once per wire format) and compares that
# request field by field with the official one (tests/conformance/compare.mjs,
# Node 20 stdlib only); it fails on any difference neither explained nor on the
# script's allow-list. It does the same for cascade's OpenAI batch requests
# (POST /files and POST /batches of a batch-lane run) against the official
# client's. Its tables are summarised in README.md.
#
# Included from the Makefile; `make conformance` depends on both targets.

CONF_SRC := tests/conformance
CONF_DIR := build/conformance

CONFORMANCE_TARGETS += conformance-clients conformance-compare
.PHONY: conformance-clients conformance-compare

conformance-clients: $(B)/mock-llm $(CONF_DIR)/node_modules/.installed
	@cp $(CONF_SRC)/conformance.test.mjs $(CONF_SRC)/batch.test.mjs $(CONF_DIR)/
	@cd $(CONF_DIR) && MOCK_BIN=$(CURDIR)/$(B)/mock-llm OUT_DIR=$(CURDIR)/$(CONF_DIR) \
	  timeout -k 5 300 node --test --test-reporter=spec conformance.test.mjs batch.test.mjs
	@echo "conformance-clients: requests captured in $(CONF_DIR)/official-requests.json" \
	  "and official-batch-requests.json"

# Reinstalled only when the pins change. npm ci installs exactly the lock file;
# the clients' install scripts are not needed (genai's is a no-op, protobufjs'
# only checks versions), so none is run.
$(CONF_DIR)/node_modules/.installed: $(CONF_SRC)/package.json $(CONF_SRC)/package-lock.json
	@command -v npm >/dev/null || { echo "conformance: npm is missing; run 'make deps'" >&2; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
	  || { echo "conformance: the pinned clients need Node.js 20 or later" >&2; exit 1; }
	@mkdir -p $(CONF_DIR)
	cp $(CONF_SRC)/package.json $(CONF_SRC)/package-lock.json $(CONF_DIR)/
	cd $(CONF_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

# Needs the official requests, hence conformance-clients first (also under -j).
conformance-compare: $(B)/cascade $(B)/mock-llm conformance-clients
	@CASCADE_BIN=$(CURDIR)/$(B)/cascade MOCK_BIN=$(CURDIR)/$(B)/mock-llm \
	  OFFICIAL=$(CURDIR)/$(CONF_DIR)/official-requests.json OUT_DIR=$(CURDIR)/$(CONF_DIR) \
	  timeout -k 5 300 node $(CONF_SRC)/compare.mjs
