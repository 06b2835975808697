"""The `ostracon` command line. Expected errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from .core.actors import short_actor
from .core.block import decode_change
from .core.errors import OstraconError
from .storage import logformat
from .tagged_json import from_json_value, to_json_value

EXIT_ERROR = 2      # the command could not run (bad path, locked, malformed input)
EXIT_MISMATCH = 1   # verify found a problem


class CliError(Exception):
    pass


#: Characters a terminal acts on instead of showing: C0 and C1 controls (ESC starts cursor
#: moves, title changes, screen clears), DEL, line/paragraph separators and the bidi
#: embeddings, overrides and isolates (they reorder what is shown). An explicit set, not
#: str.isprintable(), which follows the interpreter's Unicode database.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _shown(text: str) -> str:
    """`text` safe to print on a terminal: field names, metadata and values come from any
    member of a space, so each character of `_UNSHOWN` is printed as its escape (\\x1b)."""
    return _UNSHOWN.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def _open(path: str, *, read_only: bool = True, create: bool = False, **options: Any) -> Any:
    import ostracon
    if not create:
        if not os.path.isdir(path):
            raise CliError(f"{path}: no such database directory")
        # A mistyped path must not read as an empty database ("OK: 0 blocks") or, for the
        # writing commands, become one.
        if not any(logformat.parse_segment_name(f) is not None or logformat.parse_snapshot_name(f) is not None
                   for f in os.listdir(path)):
            raise CliError(f"{path}: not an Ostracon database (no log segments or snapshots)")
    if read_only:
        options.setdefault("follow", False)  # one-shot commands read a moment; no follower thread
    return ostracon.open(path, read_only=read_only, **options)


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


# ---------------------------------------------------------------- commands

def cmd_inspect(args: argparse.Namespace) -> int:
    db = _open(args.path)
    try:
        r = db.replica
        print(f"database   {os.path.abspath(args.path)}")
        print(f"identity   {db.actor}")
        print(f"blocks     {len(r.blocks)}")
        print(f"actors     {len(r.by_actor)}")
        for actor in sorted(r.by_actor):
            print(f"  {actor.hex()}  seq {len(r.by_actor[actor])}, sealed to {r.sealed_upto.get(actor, 0)}")
        print(f"collections {len(r.collections)}")
        for name in sorted(r.collections):
            docs = r.collections[name]
            live = sum(1 for d in docs.values() if not d.deleted)
            print(f"  {name}: {live} documents ({len(docs) - live} deleted)")
        files = sorted(os.listdir(args.path))
        seg = sum(os.path.getsize(os.path.join(args.path, f)) for f in files if f.endswith(".log"))
        snap = [f for f in files if "snap" in f]
        print(f"segments   {sum(1 for f in files if f.endswith('.log'))} files, {_human_bytes(seg)}")
        print(f"snapshots  {len(snap)} files, "
              f"{_human_bytes(sum(os.path.getsize(os.path.join(args.path, f)) for f in snap))}")
        rep = db.open_report()
        if rep.truncated_bytes or rep.quarantined or rep.notes:
            print(f"recovery   truncated {rep.truncated_bytes} bytes; quarantined {list(rep.quarantined)}; "
                  f"{'; '.join(rep.notes)}")
    finally:
        db.close()
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from .core.clock import wall_ms
    from .db.audit import audit_entries
    db = _open(args.path)
    try:
        r = db.replica
        if r.pruned:  # compaction --prune-before dropped these bodies; say so rather than look complete
            horizon = r.checkpoint["horizon"] if r.checkpoint else None
            when = "unknown" if horizon is None else _iso(horizon)
            # NDJSON stays replayable by `ostracon import`: the note goes to stderr there.
            print(f"{len(r.pruned)} older block(s) pruned by compaction (horizon {when})",
                  file=sys.stderr if args.ndjson else sys.stdout)
        for entry in audit_entries(r):
            meta = entry["meta"] or {}
            if args.stage is not None and meta.get("stage") != args.stage:
                continue
            if args.ndjson:
                print(json.dumps(entry, ensure_ascii=False, sort_keys=True))
                continue
            ch = decode_change(base64.b64decode(entry["block"]))
            ops = ", ".join(_describe_op(op) for op in ch.ops) or "(no field changes)"
            by = "".join(f" {k}={meta[k]}" for k in ("stage", "provider", "model") if k in meta)
            print(f"{entry['cid'][:16]}… {ch.collection}/{_shown(ch.doc_id)} by {short_actor(entry['actor'])} "
                  f"#{ch.seq} at {_iso(wall_ms(ch.hlc))}{_shown(by)}: {_shown(ops)}")
    finally:
        db.close()
    return 0


def _describe_op(op: tuple) -> str:
    if op[0] == "s":
        return f"set {op[1]}={json.dumps(to_json_value(op[2]), ensure_ascii=False)[:60]}"
    if op[0] == "u":
        return f"unset {op[1]}"
    if op[0] == "i":
        return f"increment {op[1]} by {op[2]}"
    return "delete document"


def _iso(ms: int) -> str:
    # Own formatting: datetime stops at year 9999, a legal stamp reaches year 10889.
    from .core.clock import format_ms
    return format_ms(ms)


def cmd_history(args: argparse.Namespace) -> int:
    db = _open(args.path)
    try:
        for c in db.collection(args.collection).history(args.id, allow_pruned=True):
            if "pruned" in c:  # the marker history() puts first when compaction dropped commits
                if args.ndjson:
                    print(json.dumps(c, sort_keys=True))
                else:
                    horizon = "unknown" if c["horizon"] is None else _iso(c["horizon"])
                    print(f"{c['pruned']} older commit(s) pruned by compaction (horizon {horizon})")
                continue
            if args.ndjson:
                print(json.dumps(to_json_value(c), ensure_ascii=False, sort_keys=True))
            else:
                sig = c["signature"]["status"]
                ops = ", ".join(_describe_op(tuple(op)) for op in c["ops"]) or "(no field changes)"
                meta = c.get("meta") or {}
                by = "".join(f" {k}={meta[k]}" for k in ("stage", "provider", "model") if k in meta)
                print(f"h{c['height']} {c['cid'][:16]}… by {short_actor(c['actor'])} #{c['seq']} "
                      f"{_iso(c['time'])} [{sig}] parents={len(c['parents'])}{_shown(by)}: {_shown(ops)}")
    finally:
        db.close()
    return 0


def _progress_bar(label: str, forced: bool) -> Callable[[int, int], None]:
    """A `progress(n, total)` callback drawing a bar on stderr (a terminal, or `--progress`)."""
    def progress(n: int, total: int) -> None:
        if sys.stderr.isatty() or forced:
            width = 30
            done = width * n // max(total, 1)
            print(f"\r{label} [{'#' * done}{'.' * (width - done)}] {n}/{total}", end="",
                  file=sys.stderr, flush=True)
            if n == total:
                print(file=sys.stderr)
    return progress


def verify_database(db: Any, progress: Any = None) -> list[str]:
    """Every problem `Database.verify()` finds (core/verify.py holds the rules)."""
    return db.verify(progress)


def cmd_verify(args: argparse.Namespace) -> int:
    db = _open(args.path, on_corrupt="report")  # collect every bad block instead of refusing

    try:
        problems = verify_database(db, _progress_bar("verifying", args.progress))
    finally:
        db.close()
    for p in problems:
        print(p)
    r = db.replica
    if problems:
        print(f"FAILED: {len(problems)} problem(s) in {len(r.blocks)} blocks")
        return EXIT_MISMATCH
    pruned = f" ({len(r.pruned)} pruned before {r.checkpoint['horizon']}: CIDs and seals checked, "\
             f"bodies gone)" if r.pruned else ""
    print(f"OK: {len(r.order)} blocks{pruned}, {sum(len(s) for s in r.seals.values())} seals, "
          f"{len(r.by_actor)} actors verified")
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    # `ostracon.open(path, repair=True)` for the command line: what a damaged log's error
    # message asks for. Damaged records and blocks are moved aside (quarantine-* files), never
    # deleted, so a repair can be undone by hand.
    db = _open(args.path, read_only=False, repair=True)
    try:
        rep = db.open_report()
        problems = db.verify()
    finally:
        db.close()
    for note in rep.notes:
        print(f"note: {note}")
    for q in rep.quarantined:
        print(f"quarantined: {q}")
    if rep.truncated_bytes:
        print(f"cut off: a damaged or torn tail of {rep.truncated_bytes} bytes")
    left = [p for p in problems if not p.startswith("log: ")]  # what the repair itself reported
    for p in left:
        print(p)
    if left:
        print(f"FAILED: {len(left)} problem(s) remain after the repair")
        return EXIT_MISMATCH
    print("OK: repaired" if rep.quarantined or rep.truncated_bytes else "OK: nothing to repair")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    db = _open(args.path, read_only=False)
    try:
        if args.prune_before is not None:
            pos = db.compact(prune_before=args.prune_before, keep_snapshots=args.keep_snapshots)
        else:
            pos = db.compact(keep_snapshots=args.keep_snapshots)
    finally:
        db.close()
    print(f"compacted: snapshot at record {pos}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    db = _open(args.path, read_only=False)

    try:
        name = db.collection(args.collection).create_index(
            args.fields.split(","), unique=args.unique, wait=True,
            progress=_progress_bar("indexing", args.progress))
    finally:
        db.close()
    print(f"index {name} on {args.collection} is ready")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    db = _open(args.path)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    n = 0
    try:
        # Definitions first (schemas, declarative lenses, indexes: db/exchange.py), so an
        # import validates the documents that follow.
        for entry in db.definitions():
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        for name in db.collections():
            col = db.collection(name)
            after = None
            while True:
                docs, after = col.scan(after=after, limit=1000)
                for d in docs:
                    out.write(json.dumps({"collection": name, "doc": to_json_value(d)},
                                         ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
                if after is None:
                    break
    finally:
        db.close()
        if out is not sys.stdout:
            out.close()
    print(f"exported {n} documents", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    import ostracon
    if args.algorithm is not None:
        from .identity_cli import ensure_identity
        ensure_identity(args.path, args.algorithm)  # opening then loads it
    db = _open(args.path, read_only=False, create=True)
    from .core.encoding import encode
    from .db.exchange import is_definition
    created = updated = unchanged = 0
    try:
        with open(args.file, encoding="utf-8") as fh:
            first = next((line for line in fh if line.strip()), "")
            fh.seek(0)
            if _is_audit_line(first):
                from .db.audit import replay
                n = replay(db, _audit_lines(args.file, fh))
                db.flush()
                print(f"imported: {n} blocks replayed")
                return 0
            # Every definition record is checked and taken before any document is written:
            # a malformed one leaves the store as it was.
            definitions = []
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        entry = json.loads(line)
                    except (ValueError, RecursionError) as exc:  # nested past the parser's depth
                        raise CliError(f"{args.file}:{lineno}: not an export line ({exc.__class__.__name__})") from None
                    if is_definition(entry):
                        definitions.append(entry)
            if definitions:
                got = db.import_definitions(definitions)
                print(f"imported definitions: {got['schemas']} schema versions, {got['lenses']} lenses, "
                      f"{got['indexes']} indexes")
            fh.seek(0)
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    if is_definition(entry):
                        continue
                    name, doc = entry["collection"], from_json_value(entry["doc"])
                    doc_id = doc.get("_id")
                    fields = {k: v for k, v in doc.items() if not k.startswith("_")}
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    raise CliError(f"{args.file}:{lineno}: not an export line ({exc.__class__.__name__})") from None
                col = db.collection(name)
                current = None if doc_id is None else col.get(doc_id)
                if current is not None:
                    # Idempotent: a document already holding exactly these values (types
                    # included: 1, 1.0 and true differ) gets no new commit.
                    user = {k: v for k, v in current.items() if not k.startswith("_")}
                    if encode(user) == encode(fields):
                        unchanged += 1
                        continue
                    col.update(doc_id, fields)
                    updated += 1
                else:
                    col.create(fields, id=doc_id)
                    created += 1
        db.flush()
    except (ostracon.ValidationError, ostracon.NotFoundError, ostracon.ConflictError,
            ostracon.CorruptBlockError) as exc:
        raise CliError(f"{args.file}: {exc}") from exc
    except UnicodeDecodeError:
        # Definitions are read from the whole file first, so bad bytes anywhere in an export
        # stop the import before any document is written.
        raise CliError(f"{args.file}: not UTF-8 text, so not an export or audit trail") from None
    finally:
        db.close()
    print(f"imported: {created} created, {updated} updated, {unchanged} unchanged")
    return 0


def _is_audit_line(line: str) -> bool:
    from .db.audit import is_audit_entry
    try:
        return is_audit_entry(json.loads(line))
    except (ValueError, RecursionError):  # nested past the parser's depth: not an audit line
        return False


def _audit_lines(name: str, fh: Any) -> Iterator[Any]:
    from .db.audit import MAX_LINE_CHARS
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            raise CliError(f"{name}:{lineno}: line longer than {MAX_LINE_CHARS} chars")
        try:
            yield json.loads(line)
        except (ValueError, RecursionError):
            raise CliError(f"{name}:{lineno}: not JSON") from None


def cmd_relay(args: argparse.Namespace) -> int:
    from .relay.cli import main_relay
    return main_relay(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import main_serve
    return main_serve(args)


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ostracon", description="Ostracon: a local-first, verifiable document store.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("inspect", help="collections, counts, actors, file sizes")
    s.add_argument("path")
    s.set_defaults(fn=cmd_inspect)

    s = sub.add_parser("log", help="the audit trail: one change per line")
    s.add_argument("path")
    s.add_argument("--ndjson", action="store_true",
                   help="one self-contained JSON object per block (block bytes and seal included; "
                        "`ostracon import` replays it)")
    s.add_argument("--stage", default=None, help="only commits whose metadata names this stage")
    s.set_defaults(fn=cmd_log)

    s = sub.add_parser("history", help="a document's commits")
    s.add_argument("path")
    s.add_argument("collection")
    s.add_argument("id")
    s.add_argument("--ndjson", action="store_true")
    s.set_defaults(fn=cmd_history)

    s = sub.add_parser("verify", help="recompute every CID, DAG link and signature")
    s.add_argument("path")
    s.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    s.set_defaults(fn=cmd_verify)

    s = sub.add_parser("repair", help="open a damaged database with repair: quarantine what is damaged, keep "
                                      "the valid rest")
    s.add_argument("path")
    s.set_defaults(fn=cmd_repair)

    s = sub.add_parser("compact", help="write a snapshot and drop the log it covers")
    s.add_argument("path")
    s.add_argument("--prune-before", type=int, default=None, metavar="MS",
                   help="also drop block bodies older than this wall time (ms since epoch), keeping a checkpoint")
    s.add_argument("--keep-snapshots", type=int, default=1, metavar="K",
                   help="keep the newest K snapshots (older states for audit; default 1)")
    s.set_defaults(fn=cmd_compact)

    s = sub.add_parser("index", help="create a secondary index and wait until it is built")
    s.add_argument("path")
    s.add_argument("collection")
    s.add_argument("fields", help="field path(s), comma separated for a compound index (e.g. owner,due)")
    s.add_argument("--unique", action="store_true", help="refuse two documents with the same key")
    s.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")
    s.set_defaults(fn=cmd_index)

    s = sub.add_parser("export", help="schemas, declarative lenses, index definitions and every "
                                      "live document as NDJSON")
    s.add_argument("path")
    s.add_argument("--ndjson", action="store_true", default=True, help="(the only format; accepted for clarity)")
    s.add_argument("-o", "--output", help="file to write (default stdout)")
    s.set_defaults(fn=cmd_export)

    s = sub.add_parser("import", help="take schemas, lenses and indexes, then create/update documents "
                                      "from an NDJSON export, or replay a `log --ndjson` audit trail")
    s.add_argument("path")
    s.add_argument("file")
    from .identity_cli import add_algorithm_argument, add_identity_arguments
    add_algorithm_argument(s)
    s.set_defaults(fn=cmd_import)

    add_identity_arguments(sub)

    from .relay.cli import add_relay_arguments
    s = sub.add_parser("relay", help="run the WebSocket relay")
    add_relay_arguments(s)
    s.set_defaults(fn=cmd_relay)

    from .space_cli import add_space_arguments
    add_space_arguments(sub)

    from .serve import add_serve_arguments
    s = sub.add_parser("serve", help="relay + the web app + /healthz (+ /graphql, read-only REST /api) on one port")
    add_serve_arguments(s)
    s.set_defaults(fn=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    from .identity_cli import IdentityCliError
    from .space_cli import SpaceCliError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (CliError, SpaceCliError, IdentityCliError) as exc:
        print(f"ostracon {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except OstraconError as exc:
        hint = f" (from the command line: ostracon repair {args.path})" \
            if "repair=True" in str(exc) and getattr(args, "path", None) else ""
        print(f"ostracon {args.command}: {exc.__class__.__name__}: {exc}{hint}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:
        print(f"ostracon {args.command}: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
