# Two commands do all set-up: `make demo` runs the default session, `make test` runs the suite.
# Each creates .venv and installs the project (torch pinned through constraints.txt) if needed.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: demo test lint system-deps clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev,bench]'
	@touch $(STAMP)

# Headless MuJoCo rendering needs an EGL library; install it where it is missing (root only).
system-deps:
	@ldconfig -p | grep -q 'libEGL.so.1' || { \
	  echo "installing EGL/GL libraries for headless rendering"; \
	  apt-get update -qq && apt-get install -y -qq libegl1 libgl1 libgles2 >/dev/null; }

demo: system-deps $(STAMP)
	$(VENV)/bin/robot-rl train

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

# two workers: the suite mostly waits (robots paced in real time, Ray and subprocess start-ups),
# so two at a time take ~16 min on 2 cores where one at a time takes ~27; worksteal evens out
# the few tests that run for minutes
test: system-deps $(STAMP) lint
	$(VENV)/bin/pytest -q -n 2 --dist worksteal

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
