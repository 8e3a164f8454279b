# The two commands a new machine needs: `make demo` and `make test`. Both do the set-up first.
VENV := .venv
STAMP := $(VENV)/.torch2mcu-setup

.PHONY: demo test test-fast setup fuzz bench clean

demo: $(STAMP)
	$(VENV)/bin/torch2mcu demo

# Two workers: the machine's two cores (every test builds C; the suite is CPU-bound).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 --durations=15

# The edit loop: everything but the whole-model, emulator-heavy and CLI-subprocess files (5-15 min).
SLOW := test_lenet_fashion.py test_cli.py test_measure_fit.py test_targets_models.py \
        test_sanitizers.py test_compress.py test_cortex_m.py test_zoo.py test_bench.py \
        test_deploy.py test_compress_program.py test_trials.py
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest -q -n 2 $(addprefix --ignore=tests/,$(SLOW))

setup: $(STAMP)

# The MLPerf Tiny reference shapes and LeNet-5 on an emulated Cortex-M4, next to the anchors
# (docs/anchors/): per layer class and per model. One to two minutes.
bench: $(STAMP)
	$(VENV)/bin/torch2mcu bench

# The long property-based run of the operator fuzzer (thousands of cases; the seed is printed).
fuzz: $(STAMP)
	T2M_FUZZ_EXAMPLES=400 $(VENV)/bin/python -m pytest -q -s tests/test_fuzz.py

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh

clean:
	rm -rf out build .pytest_cache
