VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format browser screenshots clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gridwatch demo

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# Debian's Chromium (and a CJK font for readable screenshots) for tests/test_browser.py;
# Playwright only drives it: `playwright install` downloads browsers and must never run here.
browser:
	@if [ -x /usr/bin/chromium ] && fc-list :lang=zh 2>/dev/null | grep -q .; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium, chromium-driver and fonts-wqy-microhei (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium chromium-driver fonts-wqy-microhei >/dev/null; } \
		|| echo "WARNING: apt-get could not install chromium: the browser tests will be SKIPPED"; \
	elif [ ! -x /usr/bin/chromium ]; then \
		echo "WARNING: no /usr/bin/chromium and no root apt-get: the browser tests will be SKIPPED"; \
	fi

screenshots: $(STAMP) browser
	GRIDWATCH_SCREENSHOTS=docs $(PY) -m pytest -q tests/test_browser.py

# wrk (Debian) drives the callback budget from a separate process
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || \
		echo "WARNING: wrk is missing and could not be installed: apt-get install wrk"
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) *.egg-info
