# The two commands a new machine needs: `make demo` and `make test`. Both do the set-up first.
VENV := .venv
STAMP := $(VENV)/.torch2mcu-setup

.PHONY: demo test setup fuzz clean

demo: $(STAMP)
	$(VENV)/bin/torch2mcu demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

setup: $(STAMP)

# The long property-based run of the operator fuzzer (thousands of cases; the seed is printed).
fuzz: $(STAMP)
	T2M_FUZZ_EXAMPLES=400 $(VENV)/bin/python -m pytest -q -s tests/test_fuzz.py

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh

clean:
	rm -rf out build .pytest_cache
