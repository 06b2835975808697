"""Lossless JSON for stored values: the one JSON form of `ostracon export`/`import`, `ostracon
log` and the read-only REST API (`ostracon serve --observe`).

A stored value (core/encoding.py) is None, bool, int of any size, float, str, bytes, a list
or a map with str keys. JSON has no bytes, and a map key chosen by a user could look like a
tag, so `to_json_value` maps each type as follows and `from_json_value` inverts it exactly:

=====================  ==========================================================
stored value           JSON value
=====================  ==========================================================
None, bool, str        null, true/false, string (unchanged)
int (any size)         number without a point (unchanged; Python's json writes
                       every digit, so ints beyond 2**53 keep their value)
float                  number (unchanged; `1.0` and `-0.0` keep their point and
                       sign, so they read back as floats)
bytes                  ``{"$bytes": standard base64 with padding}`` (RFC 4648 §4)
list                   array of the mapped elements
map                    object of the mapped values; if any key starts with `$`,
                       wrapped as ``{"$map": {...}}`` (so user data never reads as
                       a tag)
=====================  ==========================================================

A one-key object ``{"$bytes": str}`` or ``{"$map": object}`` is a tag when read back; any
other object is a plain map. Stored values never hold NaN or ±Infinity (core/encoding.py
refuses them), so the output is strict JSON.
"""

from __future__ import annotations

import base64
from typing import Any

from .core.errors import ValidationError

__all__ = ["decode_base64", "from_json_value", "to_json_value"]

BYTES_TAG = "$bytes"
MAP_TAG = "$map"


def to_json_value(v: Any) -> Any:
    """The JSON form of stored value `v` (the mapping in the module docstring); a new value,
    `v` is not changed. Values of other types are returned as they are."""
    if type(v) is bytes:
        return {BYTES_TAG: base64.b64encode(v).decode("ascii")}
    if type(v) is dict:
        out = {k: to_json_value(x) for k, x in v.items()}
        return {MAP_TAG: out} if any(k[:1] == "$" for k in v) else out
    if type(v) is list:
        return [to_json_value(x) for x in v]
    return v


def decode_base64(text: Any, what: str) -> bytes:
    """The bytes of `text`, strict standard base64 with padding (RFC 4648 §4): only the
    alphabet, correct padding, no whitespace or line breaks. `what` names the field in the
    error. Raises ValidationError (a ValueError) when `text` is not a str or not strict
    base64. Every JSON form Ostracon reads (tagged values, export definitions, audit
    entries) decodes bytes through here, so all of them accept and refuse the same text."""
    if type(text) is not str:
        raise ValidationError(f"{what} must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:   # binascii.Error (a ValueError), or text that is not ASCII
        raise ValidationError(f"{what} is not valid base64") from None


def from_json_value(v: Any) -> Any:
    """The stored value of JSON value `v` (parsed JSON: dicts, lists, scalars), the inverse of
    `to_json_value`. Raises ValidationError (a ValueError) for a `$bytes` tag that is not
    strict base64."""
    if type(v) is dict:
        if len(v) == 1 and type(v.get(BYTES_TAG)) is str:
            return decode_base64(v[BYTES_TAG], BYTES_TAG)
        if len(v) == 1 and type(v.get(MAP_TAG)) is dict:
            return {k: from_json_value(x) for k, x in v[MAP_TAG].items()}
        return {k: from_json_value(x) for k, x in v.items()}
    if type(v) is list:
        return [from_json_value(x) for x in v]
    return v
