"""A database's member space over the worker RPC: the `invite`, `members` and `remove` methods
of `Host` (web/ostracon.js; crypto/spacestore.py, docs/CRYPTO.md "Membership")."""

from __future__ import annotations

from typing import Any

from ostracon.core.errors import ValidationError

from .docrpc import _opts


class SpaceRpc:
    """Mixed into Host: `self._db()` gives the open Database, `self.space` its space (None:
    opened without one), `self.relay` the relay it syncs with, `self.sync` the sync client."""

    space: Any
    relay: Any
    sync: Any

    def _db(self) -> Any:
        raise NotImplementedError

    def rpc_invite(self, relay_url: Any = None, opts: Any = None) -> str:
        """An invite string (``ost2…``) for this database's space (another device joins with
        it); ``relay_url`` defaults to the relay this database syncs with. In a member space it
        admits one device with `opts.role` (admin | writer | reader); only admins invite."""
        db = self._db()
        if self.space is None:
            raise ValidationError("this database was opened without a space: there is nothing to invite to")
        if relay_url is None:
            relay_url = self.relay
        if not isinstance(relay_url, str) or not relay_url:
            raise ValidationError("invite needs the relay URL (ws://host:port)")
        if self.space.members is None:
            return self.space.invite(relay_url)
        role = _opts(opts).get("role", "writer")
        self.space.adopt(db.identity)
        text = self.space.invite(relay_url, role=role)
        self._members_changed()
        return text

    def rpc_members(self) -> list:
        """[{actor, fingerprint, role, me}] of the space's members ([] for an open space)."""
        from ostracon.crypto.spacestore import member_rows

        db = self._db()
        if self.space is None:
            return []
        return member_rows(self.space, db.identity.actor)

    def rpc_remove(self, actor: Any) -> list:
        """Remove a member (actor hex) and rotate the space key; returns the members left."""
        db = self._db()
        if self.space is None or self.space.members is None:
            raise ValidationError("this database's space has no member list")
        if not isinstance(actor, str):
            raise ValidationError("remove needs the member's actor id (hex)")
        try:
            raw = bytes.fromhex(actor)
        except ValueError:
            raise ValidationError("actor must be hex") from None
        self.space.adopt(db.identity)
        self.space.remove(raw, upto=db.version_vector().get(actor, 0))
        self._members_changed()
        return self.rpc_members()

    def _members_changed(self) -> None:
        # Keep the log with the database; a running sync client publishes it (and, after a
        # rotation, announces it in the old room and moves to the new one).
        from ostracon.sync.members import save_log

        save_log(self._db(), self.space)
        if self.sync is not None:
            self.sync.notify_local_change()
