# Collaborative text (text CRDT, text fields). Tests run with the rest of tests/ (test-py);
# this fragment adds the editing-trace benchmark (vs pycrdt and Loro) to `make bench`, and the
# same trace in Pyodide under Node and in Chromium's worker as ratios to native.

.PHONY: bench-text bench-text-web

bench-text: setup
	$(VPY) bench/bench_text.py

bench-text-web: web chromium
	PYTHONPATH=py $(VPY) e2e/bench_text_web.py --dist $(WEB_DIST)

BENCH_STEPS += bench-text bench-text-web
