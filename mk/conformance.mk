# Conformance with the official npm clients (issue 4, item 7): the pinned
# openai, @anthropic-ai/sdk and @google/genai from tests/conformance are
# installed into build/conformance (npm registry only, scripts off), then
# tests/conformance/conformance.test.mjs points each at the mock and fails on
# any failed case. It also writes build/conformance/official-requests.json,
# the request each client sends for one fixed prompt.
#
# Included from the Makefile; `make conformance` depends on conformance-clients.

CONF_SRC := tests/conformance
CONF_DIR := build/conformance

CONFORMANCE_TARGETS += conformance-clients
.PHONY: conformance-clients

conformance-clients: $(B)/mock-llm $(CONF_DIR)/node_modules/.installed
	@cp $(CONF_SRC)/conformance.test.mjs $(CONF_DIR)/
	@cd $(CONF_DIR) && MOCK_BIN=$(CURDIR)/$(B)/mock-llm OUT_DIR=$(CURDIR)/$(CONF_DIR) \
	  timeout -k 5 300 node --test --test-reporter=spec conformance.test.mjs
	@echo "conformance-clients: requests captured in $(CONF_DIR)/official-requests.json"

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
