# Sluice: the two commands of the README, and the longer suites.
#
#   make demo     install what is missing, build, start `sluice broker` (Ctrl-C stops it)
#   make test     install what is missing, build with -Werror (gcc), run every ctest test,
#                 then rebuild with clang + ASan/UBSan and run the unit, wire, fuzz-corpus and
#                 real-client tests again (the clients drive the sanitized broker), then the
#                 resilience layer's tests once more under ThreadSanitizer
#   make fuzz     libFuzzer on every fuzz target (FUZZ_SECONDS each, default 60)
#   make bench    Sluice vs Redis Streams, NATS JetStream, librdkafka's mock broker and this
#                 machine's disk and loopback limits: bench/results/latest.md + charts
#                 (BENCH_ARGS=--quick for a short smoke run)
#   make crash-long  the kill -9 crash test with 200 iterations
#   make check    source rules (banned calls, file and function size ratchet)
#   make format   clang-format every source file
JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
DATA ?= ./data
LISTEN ?= 127.0.0.1:9092

BENCH_ARGS ?=

.PHONY: all build demo test test-main test-asan test-tsan fuzz bench crash-long check format clean

all: build

build:
	@scripts/deps.sh build
	cmake -S . -B $(BUILD) -DSL_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

demo:
	@scripts/deps.sh demo
	cmake -S . -B $(BUILD) -DSL_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS) --target sluice
	@echo
	@echo "Starting the broker on $(LISTEN) with data in $(DATA). Try it from another terminal:"
	@echo "  echo 'k1:hello' | kcat -b $(LISTEN) -t demo -P -K:     # produce (acks=all, durable)"
	@printf '%s\n' "  kcat -b $(LISTEN) -t demo -C -p 0 -o beginning -e -f '%k %s @%o\n'   # consume"
	@echo "  kcat -b $(LISTEN) -L                                    # metadata"
	@echo "Ctrl-C stops it cleanly."
	@echo
	./$(BUILD)/sluice broker --data $(DATA) --listen $(LISTEN)

test:
	@scripts/deps.sh test
	$(MAKE) --no-print-directory check
	$(MAKE) --no-print-directory test-main
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory test-tsan

test-main:
	cmake -S . -B $(BUILD) -DSL_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan:
	CC=clang cmake -S . -B $(ASAN_BUILD) -DSL_WERROR=ON -DSL_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j$(JOBS) -L 'unit|wire|fuzz|compat'

# Only what is multi-threaded by design and has no I/O: the resilience policies (their tests share one
# policy between threads). Builds just those test programs.
test-tsan:
	CC=clang cmake -S . -B $(TSAN_BUILD) -DSL_WERROR=ON -DSL_TSAN=ON >/dev/null
	cmake --build $(TSAN_BUILD) -j$(JOBS) --target $$(cd $(TSAN_BUILD) && cmake --build . --target help | \
		sed -n 's/^\.\.\. \(unit_resilience_[a-z_]*\).*/\1/p' | tr '\n' ' ')
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		ctest --output-on-failure -j$(JOBS) -R '^unit\.resilience\.'

fuzz:
	@scripts/deps.sh fuzz
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DSL_FUZZ=ON -DSL_SANITIZE=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@for f in $(FUZZ_BUILD)/fuzz/fuzz_*; do \
		name=$${f##*/fuzz_}; mkdir -p $(FUZZ_BUILD)/corpus-$$name; \
		echo "fuzzing $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(FUZZ_BUILD)/corpus-$$name fuzz/corpus/$$name || exit 1; \
	done

bench:
	@scripts/deps.sh bench
	cmake -S . -B $(BUILD) -DSL_WERROR=ON >/dev/null
	cmake --build $(BUILD) -j$(JOBS) --target sluice sl_limits sl_peergen
	/usr/bin/python3 bench/run.py --build $(BUILD) $(BENCH_ARGS)

crash-long: build
	ITER=200 SLUICE_BIN=$(BUILD)/sluice SLUICE_TOOLS=$(BUILD)/tools SLUICE_SRC=$(CURDIR) \
		bash tests/compat/run.sh tests/crash/test_crash_short.sh

check:
	@scripts/check-source.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' | grep -v '/gen_')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
