VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint format browser nginx screenshots clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,litestream]'
	touch $(STAMP)

# `make demo PORT=5001` when 5000 is taken
demo: $(STAMP)
	$(VENV)/bin/gridwatch demo$(if $(PORT), --port $(PORT))

test: $(STAMP) browser nginx
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

# `apt_get ARGS`: apt-get as root, tried again while another apt or dpkg holds its lock (up to
# 10 tries, 15 s apart); any other failure shows apt's output and stops. A service that a
# package's postinst would start (nginx on port 80) is not started: when the system has no
# /usr/sbin/policy-rc.d, one that refuses every start is in place for the install only.
APT_GET = apt_get() { \
	for try in 1 2 3 4 5 6 7 8 9 10; do \
		out=$$(DEBIAN_FRONTEND=noninteractive apt-get "$$@" 2>&1) && return 0; \
		case "$$out" in *"Could not get lock"*) ;; *) echo "$$out" >&2; return 1;; esac; \
		echo "apt is locked (try $$try of 10), waiting 15 s"; sleep 15; \
	done; echo "$$out" >&2; return 1; }; \
	if [ ! -e /usr/sbin/policy-rc.d ]; then \
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT; trap 'exit 130' INT TERM; \
		printf '\043!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; \
	fi

# Debian's Chromium (and a CJK font for readable screenshots) for tests/test_browser.py;
# Playwright only drives it: `playwright install` downloads browsers and must never run here.
browser:
	@if [ -x /usr/bin/chromium ] && fc-list :lang=zh 2>/dev/null | grep -q .; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium, chromium-driver and fonts-wqy-microhei (apt-get)"; \
		$(APT_GET); \
		{ apt_get update -qq && apt_get install -y -qq \
			chromium chromium-driver fonts-wqy-microhei; } \
		|| echo "WARNING: apt-get could not install chromium: the browser tests will be SKIPPED"; \
	elif [ ! -x /usr/bin/chromium ]; then \
		echo "WARNING: no /usr/bin/chromium and no root apt-get: the browser tests will be SKIPPED"; \
	fi

# Debian's nginx for tests/test_nginx.py, which runs its own instance (config, pid, logs and
# temp files in a temp dir, 127.0.0.1 only); the package's own service is not started.
nginx:
	@if [ -x /usr/sbin/nginx ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing nginx (apt-get, its service not started)"; \
		$(APT_GET); \
		{ apt_get update -qq && apt_get install -y -qq nginx; } \
		|| echo "WARNING: apt-get could not install nginx: the nginx tests will be SKIPPED"; \
	else \
		echo "WARNING: no /usr/sbin/nginx and no root apt-get: the nginx tests will be SKIPPED"; \
	fi

screenshots: $(STAMP) browser
	GRIDWATCH_SCREENSHOTS=docs $(PY) -m pytest -q tests/test_browser.py

# wrk (Debian) drives the callback budget from a separate process; WeRoBot (PyPI, the bench's
# virtualenv only) is the echo bot the callback is compared with
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && { $(APT_GET); \
		apt_get update -qq && apt_get install -y -qq wrk; }; } || \
		echo "WARNING: wrk is missing and could not be installed: apt-get install wrk"
	@$(PY) -c 'import werobot' 2>/dev/null || $(PY) -m pip install --quiet 'werobot==1.13.1' || \
		echo "WARNING: werobot could not be installed: the WeRoBot ratio is NOT MEASURED"
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) *.egg-info
