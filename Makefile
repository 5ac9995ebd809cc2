# Entry points. `make demo` and `make test` install what is missing (scripts/deps.sh), build,
# and run. The real build is CMake; this file only strings the steps together.
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps model build test demo bench bench-e2e sanitize format clean

all: build

deps:
	@bash scripts/deps.sh

# The default news encoder's files (vocab.txt for the tokenizer tests), fetched once into .cache/.
model: deps
	@bash scripts/fetch_model.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build model
	cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: build model
	@bash scripts/demo.sh $(BUILD)

bench: build model
	@bash bench/run.sh $(BUILD)

# End to end against the raw I/O ceiling and the Python peer (bench/e2e.sh --help); options go
# in ARGS, e.g. make bench-e2e ARGS="--events 100000 --runs 1".
bench-e2e: build
	@bash bench/e2e.sh --build $(BUILD) $(ARGS)

# AddressSanitizer + UndefinedBehaviorSanitizer build and tests, in its own build folder.
sanitize: deps model
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVIGIL_SANITIZE=address,undefined >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure --timeout 900

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) build-asan
