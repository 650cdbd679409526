# objmem front door.  make demo | test | bench | install | clean
# MODE=release|debug|asan|ubsan|asan+ubsan|tsan  (default release)
MODE ?= release
BUILD := build/$(MODE)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
CMAKE_FLAGS ?=

.PHONY: all build deps deps-bench test demo bench install clean format

all: build

deps:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

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

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf build
