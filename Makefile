# Thin wrapper: `make run` and `make test` do everything on a fresh Debian 12 machine.
BUILD_DIR ?= build
JOBS ?= $(shell nproc)
# Extra cmake arguments for a first configure; CI passes -DTALLY_WERROR=ON (.ci/run). Given on an
# existing build directory they re-run cmake with them.
CMAKE_ARGS ?=

.PHONY: all deps configure build run test test-long bench package clean format format-check

all: build

deps:
	@installer/install-deps.sh

configure: deps
	@if [ ! -f $(BUILD_DIR)/build.ninja ] || [ -n "$(CMAKE_ARGS)" ]; then \
	  cmake --preset default -B $(BUILD_DIR) $(CMAKE_ARGS); fi

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@installer/run-demo.sh

test: build
	@cd $(BUILD_DIR) && QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j $(JOBS) --timeout 600 -LE long

# Suites too long for every change (long fuzz runs, power-loss schedules, compatibility and load
# runs); .ci/run runs them after `make test`.
test-long: build
	@cd $(BUILD_DIR) && QT_QPA_PLATFORM=offscreen ctest --output-on-failure -j $(JOBS) --timeout 3000 -L long --no-tests=ignore

bench: build
	@tests/bench/run.sh

package: build
	@cd $(BUILD_DIR) && cpack -G DEB

clean:
	rm -rf $(BUILD_DIR)

# Layout is .clang-format's; format-check fails (and lists the files) when a file differs from it.
FORMAT_FILES = git ls-files '*.cpp' '*.h' '*.c' '*.cc'

format: deps
	@$(FORMAT_FILES) | xargs clang-format -i

format-check: deps
	@$(FORMAT_FILES) | xargs clang-format --dry-run --Werror 2>&1 | grep -o '^[^:]*:[0-9]*' | sort -u -t: -k1,1 | sed 's/^/unformatted: /'; \
	  $(FORMAT_FILES) | xargs clang-format --dry-run --Werror >/dev/null 2>&1
