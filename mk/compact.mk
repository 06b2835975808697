# Compaction in steps: how long a call waits while the Chromium worker compacts
# (e2e/bench_compact.py) and how long a writer thread waits while a file-storage database
# compacts natively (bench/bench_compact.py), each the one-go encoding against the steps.
# Its e2e test and unit tests run with the rest of e2e/ and tests/.

.PHONY: bench-compact bench-compact-native

bench-compact: web chromium
	PYTHONPATH=py $(VPY) e2e/bench_compact.py --dist $(WEB_DIST)

bench-compact-native: setup
	$(VPY) bench/bench_compact.py

BENCH_STEPS += bench-compact-native bench-compact
