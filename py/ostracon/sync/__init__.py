"""Sync transports: the runtime-agnostic client driver (`client`), the asyncio websockets
transport (`native`) and the transport contract (`base`). The protocol itself is the pure
sans-IO session in `ostracon.core.protocol.session`."""
