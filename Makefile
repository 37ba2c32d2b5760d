# lifecert: the two set-up commands of the README are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser demo test quick lint bench clean poppler

setup: $(STAMP) browser poppler

# The browser tests (tests/web) drive Debian's Chromium through its chromium-driver
# (/usr/bin/chromium, /usr/bin/chromedriver): installed once, when missing (as root).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian's chromium and chromium-driver (browser tests)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=600 \
	    chromium chromium-driver >/dev/null 2>&1 || \
	  { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install \
	    -y -q -o DPkg::Lock::Timeout=600 chromium chromium-driver >/dev/null; } || \
	  { echo "make setup: could not install chromium and chromium-driver (run as root, or \
	install them yourself: apt-get install chromium chromium-driver)" >&2; exit 1; }; \
	fi

# pdftoppm (Debian's poppler-utils): the report tests render the PDF to PNG with it; a
# Chinese font (fonts-wqy-zenhei) for poppler to draw the PDF's STSong-Light with.
poppler:
	@{ command -v pdftoppm >/dev/null && test -f /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc; } \
	  || { apt-get update -qq && apt-get install -y -qq poppler-utils fonts-wqy-zenhei; }

$(STAMP): pyproject.toml dev/pyproject.toml $(wildcard proto/lifecert/v1/*.proto)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lifecert needs Python >= 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# lifecert (what a bureau runs) and lifecert-dev (dev/: simulators, test kit, generator,
	# local stack, demo, benchmarks), both editable.
	$(BIN)/pip install --quiet -e '.[dev]' -e ./dev
	# face_recognition declares `dlib` (a 14-minute source build); dlib-bin provides it.
	$(BIN)/pip install --quiet --no-deps face_recognition==1.3.0
	# The gRPC code is generated from proto/, never edited or committed.
	$(BIN)/python -m lifecert.api.build_protos
	@touch $@

demo: setup
	$(BIN)/lifecert demo

test: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	# every property at its full example count (tests/conftest.py: the thorough profile);
	# three test processes (pytest-xdist), each test file on one of them, as the stack
	# tests mostly wait on the broker, the database and their children; then, alone, the
	# few that stop or restart the shared stack (marker `exclusive`)
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -n 3 --dist loadfile -m "not exclusive"
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -m exclusive

# The quick loop: no broker, no database, two processes. Python may write its bytecode
# cache for it (a shell's PYTHONDONTWRITEBYTECODE makes every run compile the sources again
# in each process and in each `lifecert` command the tests start: about 25 s more CPU).
quick: setup
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -m "not stack" -n 2

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: setup
	$(BIN)/lifecert bench replay

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .mypy_cache
