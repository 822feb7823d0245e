# smsgw: two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Debian packages the test suite needs (checked, installed with apt-get when missing).
# systemd (systemd-analyze verify/security) and udev (udevadm test): tests/appliance checks the
# unit and the udev rules with their own tools. php-cli and php-curl run the BestSMSGateway
# spec's PHP cURL samples against `smsgw demo`; curl runs the UltraSMS/SMSit example URLs.
# chromium + chromium-driver: the dashboard's browser tests (selenium); prometheus: promtool
# checks the /metrics exposition. postgresql: the store suite runs on both backends, against a
# throwaway cluster (initdb/pg_ctl in a temporary directory; Debian's own service stays down).
APT_PACKAGES ?= systemd udev php-cli php-curl curl chromium chromium-driver prometheus postgresql wrk

.PHONY: demo test test-slow bench lint typecheck importlint unit venv apt clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install only when the project metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing apt packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

demo: venv
	$(BIN)/smsgw demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy modem gateway

importlint: venv
	$(BIN)/lint-imports

unit: venv apt
	$(BIN)/pytest -q -m "not slow"

test: lint typecheck importlint unit

test-slow: venv apt
	$(BIN)/pytest -q -m slow

bench: venv
	$(BIN)/python -m tests.bench

# Every dashboard page, at desktop and phone width, as PNGs in tests/artifacts/ (not committed).
screenshots: venv apt
	SCREENSHOTS_DIR=tests/artifacts $(BIN)/pytest -q tests/api/test_dashboard_browser.py -k screenshots
	@ls tests/artifacts/*.png

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
