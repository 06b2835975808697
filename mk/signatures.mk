# Actor signature algorithms (Ed25519, ECDSA P-256). Tests run with the rest of tests/ and in
# test-node / test-e2e; this fragment adds the seal signature benchmark to `make bench`.

.PHONY: bench-signatures

bench-signatures: setup
	PYTHONPATH=py $(VPY) bench/bench_signatures.py

BENCH_STEPS += bench-signatures
