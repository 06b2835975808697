# Collaborative text (text CRDT, text fields). Tests run with the rest of tests/ (test-py);
# this fragment adds the editing-trace benchmark (vs pycrdt and Loro) to `make bench`.

.PHONY: bench-text

bench-text: setup
	$(VPY) bench/bench_text.py

BENCH_STEPS += bench-text
