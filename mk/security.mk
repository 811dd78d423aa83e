# Hostile input, faults and load (see SECURITY.md).
#
#   make fuzz        every cargo-fuzz target for FUZZ_SECONDS (default 30) each,
#                    from the seed corpora under fuzz/corpus; prints executions
#   make fuzz-build  just build the fuzz targets
#   make properties  the proptest properties (also part of `make test`)
#   make faults      the fault suite in real Envoy (also part of `make test`)
#   make soak        SOAK_SECONDS (default 60) of mixed load and a hostname
#                    flood against Envoy; statuses, errors, memory growth
#
# The fuzz crate (fuzz/) is its own workspace, built with nightly into
# fuzz/target; libFuzzer grows a working corpus under fuzz/work/ and never
# writes into the checked-in seeds. Crashes land in fuzz/artifacts/<target>/.

FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= authority lookup_answer feed_answer json accept config cache_slot lock
FUZZ_CARGO ?= cargo +nightly
FUZZ_FLAGS ?= --debug-assertions
SOAK_SECONDS ?= 60

.PHONY: fuzz fuzz-build fuzz-tools properties faults soak

fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null 2>&1 || { \
	  echo "installing cargo-fuzz (compiles for about a minute)"; \
	  $(CARGO) install cargo-fuzz --locked; }

fuzz-build: fuzz-tools
	cd fuzz && $(FUZZ_CARGO) fuzz build $(FUZZ_FLAGS)

fuzz: fuzz-build
	@set -e; cd fuzz; mkdir -p work; : > work/summary; \
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p work/corpus/$$t; \
	  dict=""; [ -f dict/$$t.dict ] && dict="-dict=dict/$$t.dict"; \
	  echo "fuzz $$t: $(FUZZ_SECONDS) s"; \
	  if ! $(FUZZ_CARGO) fuzz run $(FUZZ_FLAGS) $$t work/corpus/$$t corpus/$$t -- \
	       -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict > work/$$t.log 2>&1; then \
	    tail -n 60 work/$$t.log; echo "fuzz $$t FAILED: see fuzz/work/$$t.log and fuzz/artifacts/$$t/"; exit 1; \
	  fi; \
	  runs=$$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 \2/p' work/$$t.log | tail -n 1); \
	  cov=$$(grep -o 'cov: [0-9]*' work/$$t.log | tail -n 1 | cut -d' ' -f2); \
	  corpus=$$(ls work/corpus/$$t | wc -l); \
	  printf '%-14s %12s execs in %3s s  cov %5s  corpus %5s\n' $$t $${runs% *} $${runs#* } "$$cov" "$$corpus" | tee -a work/summary; \
	done; \
	echo; echo "cargo +nightly fuzz run $(FUZZ_FLAGS) <target> -- -max_total_time=$(FUZZ_SECONDS):"; cat work/summary

properties:
	$(CARGO) test -p cname-guard --test properties

faults: deps build
	$(CARGO) test -p cname-guard --test faults -- --nocapture

soak: deps build
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test -p cname-guard --release --test soak -- --ignored --nocapture
