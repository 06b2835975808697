"""Child process for tests/test_db_driver.py: writes documents to a file database and then
ends in one of three ways the parent chooses.

Usage: lifecycle_child.py PATH MODE N
- idle:  write N documents, wait until the driver made them durable on its own (the time
         trigger, while the program idles), print "durable", then sleep until killed.
- exit:  write N documents and end normally without close() (atexit must flush).
- kill:  write N documents, flush(), write 30 more (inside a 60 s interval), print
         "ready", then sleep until killed: those 30 are the documented bounded loss.
Document i has id "d%05d" and field n = i.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    import ostracon

    path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    interval = 60_000 if mode == "kill" else 300
    db = ostracon.open(path, sink_interval_ms=interval)
    col = db.collection("docs")
    for i in range(n):
        col.create({"n": i}, id=f"d{i:05d}")
    if mode == "idle":
        while db.sink_status["durable_total"] < n:
            time.sleep(0.01)
        print("durable", flush=True)
        time.sleep(3600)
    elif mode == "kill":
        db.flush()
        for i in range(n, n + 30):
            col.create({"n": i}, id=f"d{i:05d}")
        print("ready", flush=True)
        time.sleep(3600)
    # mode "exit": fall off the end without close()


if __name__ == "__main__":
    main()
