# The two commands a new machine needs: `make demo` and `make test`. Both do the set-up first.
VENV := .venv
STAMP := $(VENV)/.torch2mcu-setup

.PHONY: demo test setup fuzz clean

demo: $(STAMP)
	$(VENV)/bin/torch2mcu demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/setup.sh
	./scripts/setup.sh

clean:
	rm -rf out build .pytest_cache
