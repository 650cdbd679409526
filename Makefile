# objmem front door.  make demo | test | bench | fuzz | install | clean
# MODE=release|debug|asan|ubsan|asan+ubsan|tsan  (default release)
MODE ?= release
BUILD := build/$(MODE)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
CMAKE_FLAGS ?=

FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= alloc objects capture reports trace check

.PHONY: all build deps deps-bench deps-fuzz test demo bench fuzz install \
	clean format

all: build

deps:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

deps-fuzz:
	@scripts/deps.sh fuzz

$(BUILD)/CMakeCache.txt:
	@mkdir -p $(BUILD)
	cmake -S . -B $(BUILD) -DOM_MODE='$(MODE)' \
	    -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_FLAGS) >/dev/null

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/objmem tour

bench: deps-bench
	@$(MAKE) --no-print-directory build MODE=release
	build/release/bench/bench_alloc
	build/release/bench/bench_objects
	build/release/bench/bench_gc
	build/release/bench/bench_shim
	build/release/bench/bench_trace

# libFuzzer (clang, ASan+UBSan) on each target for FUZZ_SECONDS; the
# corpus grows in build/fuzz/corpus, crashes land in build/fuzz/.
fuzz: deps-fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build
