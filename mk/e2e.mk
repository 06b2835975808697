# End-to-end tests in Debian's Chromium, driven by Playwright (pytest-playwright).
# Never `playwright install`: the browser download does not work here; the system Chromium is
# used through executable_path (see e2e/conftest.py and PLATFORM.md).

CHROMIUM ?= /usr/bin/chromium

.PHONY: chromium test-e2e

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y chromium; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update && sudo apt-get install -y chromium; \
	  else echo "$(CHROMIUM) is missing and neither root nor sudo is available: install the Debian package 'chromium'" >&2; exit 1; fi; \
	fi

test-e2e: setup web chromium
	OSTRACON_CHROMIUM=$(CHROMIUM) $(VPY) -m pytest e2e

TEST_PREREQS += chromium
TEST_STEPS += test-e2e
