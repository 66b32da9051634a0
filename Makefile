# sipcm build, test and benchmark entry points. Every target installs what it needs: `run` and
# `install` only what the sensor needs at run time, the test targets also the test tools.
VENV    ?= .venv
PY      := $(VENV)/bin/python
SIPCM   := $(VENV)/bin/sipcm
STAMP   := $(VENV)/.installed
ARGS    ?= doctor
PREFIX  ?= /usr/local

.PHONY: setup setup-test system system-test venv accel run install test test-unit test-netns \
	test-pure lint bench clean

setup: system venv

setup-test: system-test venv

system:
	@bash scripts/setup-system.sh runtime

system-test:
	@bash scripts/setup-system.sh test

# The venv sits on Debian's python3 with system site packages so that `import bcc` works.
$(STAMP): pyproject.toml
	test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,accel]'
	touch $(STAMP)

# The hot modules compiled with mypyc (sipcm/accel.py); rebuilt only when a source changed.
# Without a current build sipcm runs the same code as pure Python. Then the bytecode of every
# module (the editable install runs the checkout's sources): compileall writes it even under
# PYTHONDONTWRITEBYTECODE, which would otherwise make every start compile every module again.
# A .pyc older than its source is ignored and rewritten by the next `make venv`.
venv: $(STAMP)
	$(PY) scripts/build_accel.py --if-stale
	$(PY) -m compileall -q sipcm

accel: $(STAMP)
	$(PY) scripts/build_accel.py

run: setup
	$(SIPCM) $(ARGS)

# A venv-based install under PREFIX with `sipcm` on PATH, a systemd unit and /etc/sipcm/sipcm.yml.
install: system
	PREFIX=$(PREFIX) bash scripts/install.sh

# The whole suite on the compiled build, then everything but netns on the pure Python path.
test: setup-test
	SIPCM_REQUIRE_ACCEL=1 $(PY) -m pytest -q tests
	SIPCM_PURE=1 $(PY) -m pytest -q tests --ignore=tests/netns

test-pure: venv
	SIPCM_PURE=1 $(PY) -m pytest -q tests --ignore=tests/netns

test-unit: venv
	$(PY) -m pytest -q tests --ignore=tests/netns

test-netns: setup-test
	$(PY) -m pytest -q tests/netns

lint: venv
	$(VENV)/bin/ruff check sipcm tests bench
	$(VENV)/bin/ruff format --check sipcm tests bench

# Replay figures on one core; the live figure needs root and BPF (it says so and skips otherwise).
bench: setup
	$(PY) -m bench.run
	$(PY) -m bench.parser_bench
	$(PY) -m bench.workers
	$(PY) -m bench.live --workers 1,2

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
	/usr/bin/python3 scripts/build_accel.py --clean
