# JSON Schema conformance: the official JSON-Schema-Test-Suite (draft2020-12)
# from $(DATA), run through the schema validator by tools/schema/conformance.c.
# Prints passed/failed/skipped per file; fails when a case fails in a file of
# a keyword we claim. Says so and fails when the suite is not under $(DATA).

SCHEMA_SUITE := $(DATA)/json-schema-test-suite/draft2020-12
SCHEMA_CONFORMANCE_BIN := $(B)/tools/schema-conformance

CONFORMANCE_TARGETS += conformance-schema
.PHONY: conformance-schema

conformance-schema: $(SCHEMA_CONFORMANCE_BIN)
	@if [ ! -d "$(SCHEMA_SUITE)" ]; then \
	  echo "conformance-schema: $(SCHEMA_SUITE) not found; the shared data folder is absent" \
	       "(run with DATA=path/to/shared/data)" >&2; \
	  exit 2; \
	fi
	$(SCHEMA_CONFORMANCE_BIN) "$(SCHEMA_SUITE)"

$(SCHEMA_CONFORMANCE_BIN): $(B)/obj/tools/schema/conformance.o $(B)/libcore.a $(GRAMMAR_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
