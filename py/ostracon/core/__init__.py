"""The pure core: encoding, CIDs, clock, blocks, CRDT state, DAG, feed, sink, sync state machine.

No files, sockets, threads, clocks, randomness, `js` or `pyodide` here: time, randomness and
keys are passed in, so both runtimes produce the same bytes and tests are deterministic.
"""
