# Browser runtime: npm packages, the dist/web bundle, Pyodide-under-Node checks.
# See docs/BROWSER.md.

NPM ?= npm
NODE ?= node
WEB_DIST := dist/web
NPM_STAMP := node_modules/.stamp-npm-ci
WEB_STAMP := $(WEB_DIST)/build-info.json
# Node 20 has JS Promise Integration (needed for blocking IndexedDB/WebCrypto calls from
# Python: pyodide.ffi.run_sync) only behind this flag.
NODE_JSPI := --experimental-wasm-stack-switching
# Everything the bundle is made of; a change to any of them rebuilds it.
WEB_INPUTS := $(shell find py/ostracon web wasm-build -type f \
                 -not -path '*/__pycache__/*' -not -name '*.pyc' -not -path 'wasm-build/cache/*' 2>/dev/null) \
              pyproject.toml README.md package-lock.json

.PHONY: npm-ci web test-node bench-web

$(NPM_STAMP): package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	touch $@

npm-ci: $(NPM_STAMP)

$(WEB_STAMP): $(NPM_STAMP) $(PY_STAMP) $(WEB_INPUTS)
	$(VPY) wasm-build/build.py --out $(WEB_DIST)
	touch $@

web: $(WEB_STAMP)

# Pyodide under Node (fake-indexeddb + ws): storage and crypto contract suites on the browser
# adapters, and tests/vectors replayed, all against the same dist/web bundle the browser uses.
test-node: web
	$(NODE) $(NODE_JSPI) e2e/node/run.mjs --dist $(WEB_DIST)

# W1 in Pyodide (Node and the Chromium worker) beside native; not part of `make test`.
bench-web: web chromium
	$(VPY) e2e/bench_web.py --dist $(WEB_DIST)

TEST_PREREQS += web
RUN_PREREQS += web
TEST_STEPS += test-node
BENCH_STEPS += bench-web
