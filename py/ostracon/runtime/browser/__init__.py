"""The browser runtime: the engine in a Web Worker on Pyodide (docs/BROWSER.md).

- `host`: the worker's RPC entry (one open database, subscriptions, sync, value conversion);
- `convert`: JS ↔ Python value rules;
- `indexeddb`: Storage on IndexedDB; `webcrypto`: CryptoBackend on WebCrypto;
  `transport`: the sync Transport on the browser WebSocket;
- `bridge`: the one place that names and loads web/bridge.js, and the suspension gate.

Every module imports natively (the JS parts load lazily), so the host is tested with pytest
on native adapters; the adapters themselves run under Node and Chromium (`make test-node`,
`make test-e2e`).
"""
