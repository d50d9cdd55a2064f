"""pysyncobj TCP transport with an outbox: nothing leaves before the journal is durable.

`OutboxTransport.send` only queues; the Raft node calls `flush_outbox()` right after the
journal's group fsync. Received messages pass through an optional `inbound_filter`
(the node uses it to drop duplicate append-entries instead of truncating its log).
Authentication and encryption come from the node's `encryptor` (Fernet), which the
base transport applies to every connection before any message is unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport


class OutboxTransport(TCPTransport):
    """TCPTransport whose sends are deferred until `flush_outbox`."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        self._outbox: list[tuple[Any, Any]] = []
        self.inbound_filter: Callable[[Any], Any] | None = None
        super().__init__(syncObj, selfNode, otherNodes)

    def send(self, node: Any, message: Any) -> bool:
        conn = self._connections.get(node)
        if conn is None or conn.state != CONNECTION_STATE.CONNECTED:
            return False
        self._outbox.append((node, message))
        return True

    def flush_outbox(self) -> None:
        """Send everything queued (call only after the journal is durable)."""
        while self._outbox:
            batch, self._outbox = self._outbox, []
            for node, message in batch:
                TCPTransport.send(self, node, message)

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if self.inbound_filter is not None:
            message = self.inbound_filter(message)
        super()._onMessageReceived(node, message)
