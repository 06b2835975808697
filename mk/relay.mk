# Relay: precompressed web bundle for `make run`, and the abuse figures for docs/RELAY.md.

.PHONY: web-precompressed bench-relay

# gzip/brotli siblings of the bundle's text and wasm files (served with Content-Encoding).
web-precompressed: web
	$(VPY) -m ostracon.relay.precompress $(WEB_DIST)

# Replays each attack of the abuse suite against real relay processes at bench size and
# rewrites the figures table in docs/RELAY.md (between its "abuse-figures" markers).
bench-relay: setup
	PYTHONPATH=py $(VPY) bench/relay_abuse.py --write docs/RELAY.md

RUN_PREREQS += web-precompressed
BENCH_STEPS += bench-relay
