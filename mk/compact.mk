# Compaction in steps: how long a call waits while the Chromium worker compacts, the one-go
# encoding against the steps of runtime/browser/idle.py (e2e/bench_compact.py). Its e2e
# test and unit tests run with the rest of e2e/ and tests/.

.PHONY: bench-compact

bench-compact: web chromium
	PYTHONPATH=py $(VPY) e2e/bench_compact.py --dist $(WEB_DIST)

BENCH_STEPS += bench-compact
