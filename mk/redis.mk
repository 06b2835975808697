# Redis for the relay's scale-out backend and its tests (tests/redis_server.py starts a private
# redis-server per test). Debian's package, installed the way mk/e2e.mk installs chromium.

REDIS_SERVER ?= /usr/bin/redis-server

.PHONY: redis-server

redis-server:
	@if [ ! -x $(REDIS_SERVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y redis-server; \
	  elif command -v sudo >/dev/null 2>&1; then sudo apt-get update && sudo apt-get install -y redis-server; \
	  else echo "$(REDIS_SERVER) is missing and neither root nor sudo is available: install the Debian package 'redis-server'" >&2; exit 1; fi; \
	fi

TEST_PREREQS += redis-server
