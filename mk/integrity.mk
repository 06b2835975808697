# What verifying snapshot rows costs natively (bench/bench_snapshot_verify.py): encoding with
# row digests, a lazy load with the index digest, building every document on first use.

.PHONY: bench-snapshot-verify

bench-snapshot-verify: setup
	$(VPY) bench/bench_snapshot_verify.py

BENCH_STEPS += bench-snapshot-verify
