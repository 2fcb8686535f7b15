# socle — the two commands of a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The official SEDA schemas are read from a folder, never copied into the project (../shared/seda on the
# project's machines; elsewhere `socle demo` downloads them, digests checked).
SEDA   ?= $(abspath ../shared/seda)

.PHONY: demo test install system-deps lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: install
	@if [ -z "$$SOCLE_SEDA_SCHEMAS" ] && [ -f "$(SEDA)/2.2/seda-2.2-main.xsd" ]; then \
		export SOCLE_SEDA_SCHEMAS="$(SEDA)"; fi; \
	$(BIN)/socle demo

# Debian packages the tests need: poppler-utils (pdfsig, the independent signature check), qpdf, unzip (an
# independent reader of the SIP zips), softhsm2 with opensc's pkcs11-tool (a real PKCS#11 token for the
# smart-card tests), xmlsec1 and openssl (the independent checks of XAdES and CAdES signatures), ocrmypdf
# with tesseract-ocr-fra (French OCR and PDF/A-2b copies of GED documents; it brings Ghostscript), chromium
# (the browser tests drive it; never a browser download) with npm, then axe-core from the npm registry at the
# version tests/browser's lock pins.
system-deps:
	@need=""; \
	command -v pdfsig >/dev/null || need="$$need poppler-utils"; \
	command -v qpdf >/dev/null || need="$$need qpdf"; \
	command -v unzip >/dev/null || need="$$need unzip"; \
	command -v softhsm2-util >/dev/null || need="$$need softhsm2"; \
	command -v pkcs11-tool >/dev/null || need="$$need opensc"; \
	command -v xmlsec1 >/dev/null || need="$$need xmlsec1"; \
	command -v openssl >/dev/null || need="$$need openssl"; \
	command -v ocrmypdf >/dev/null || need="$$need ocrmypdf"; \
	tesseract --list-langs 2>/dev/null | grep -qx fra || need="$$need tesseract-ocr-fra"; \
	[ -x /usr/bin/chromium ] || need="$$need chromium"; \
	command -v npm >/dev/null || need="$$need npm"; \
	if [ -n "$$need" ]; then \
		echo "Installation des paquets Debian :$$need"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$need; \
	fi
	@[ tests/browser/node_modules/.installed -nt tests/browser/package-lock.json ] || { \
		npm ci --prefix tests/browser --no-audit --no-fund --ignore-scripts --loglevel=error && \
		touch tests/browser/node_modules/.installed; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers (pytest-xdist), grouped by file (tests/conftest.py): the suite takes half the time on two cores.
TEST_WORKERS ?= 2

test: install system-deps lint
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

clean:
	rm -rf $(VENV) var site .pytest_cache .ruff_cache .mypy_cache tests/browser/node_modules
