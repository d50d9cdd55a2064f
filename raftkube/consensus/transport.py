"""pysyncobj TCP transport with an outbox: nothing leaves before the journal is durable.

`OutboxTransport.send` only queues; the Raft node calls `flush_outbox()` right after the
journal's group fsync. Received messages pass through an optional `inbound_hook` (the
node uses it to drop duplicate append-entries, to keep its pipeline of in-flight
entries and to ignore acknowledgements of other terms, which `send` stamps with the
sender's term). Authentication and encryption come from the node's `encryptor`, which the
base transport applies to every connection before any message is unpickled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport

ACK_TERM = "rk_term"
"""Key of the sender's current term in an acknowledgement (next_node_idx) message."""


class OutboxTransport(TCPTransport):
    """TCPTransport whose sends are deferred until `flush_outbox`."""

    def __init__(self, syncObj: Any, selfNode: Any, otherNodes: Any) -> None:
        self._outbox: list[tuple[Any, Any]] = []
        # inbound_hook(node, message, deliver): may rewrite the message, must call
        # deliver(message) to hand it to pysyncobj, and may act after delivery.
        self.inbound_hook: Callable[[Any, Any, Callable[[Any], None]], None] | None = None
        # disconnect_hook(node): called after pysyncobj learned a peer connection dropped.
        self.disconnect_hook: Callable[[Any], None] | None = None
        # ack_term(): the sender's current term, stamped on acknowledgements (ACK_TERM)
        self.ack_term: Callable[[], int] | None = None
        super().__init__(syncObj, selfNode, otherNodes)

    def send(self, node: Any, message: Any) -> bool:
        conn = self._connections.get(node)
        if conn is None or conn.state != CONNECTION_STATE.CONNECTED:
            return False
        if self.ack_term is not None and _is_ack(message):
            message = {**message, ACK_TERM: self.ack_term()}
        self._outbox.append((node, message))
        return True

    def flush_unacknowledging(self) -> None:
        """Send what may leave before the journal is durable: everything except
        acknowledgements of log entries (next_node_idx). A leader's append-entries may
        go out before its own fsync (Raft lets followers persist in parallel; the
        leader counts itself only after its fsync)."""
        if not self._outbox:
            return
        keep = [(n, m) for n, m in self._outbox if _is_ack(m)]
        if len(keep) == len(self._outbox):
            return
        send = [(n, m) for n, m in self._outbox if not _is_ack(m)]
        self._outbox = send
        self.flush_outbox()
        self._outbox = keep

    def flush_outbox(self) -> None:
        """Send everything queued (call only after the journal is durable). Consecutive
        append-entries to the same peer are merged into one message, and consecutive
        plain acknowledgements collapse into the latest, so a burst of proposals costs
        one encrypted frame per peer instead of one per proposal."""
        while self._outbox:
            batch, self._outbox = self._outbox, []
            merged: dict[Any, list[Any]] = {}
            order: list[Any] = []
            for node, message in batch:
                queue = merged.get(node)
                if queue is None:
                    merged[node] = queue = []
                    order.append(node)
                if queue and _mergeable(queue[-1], message):
                    queue[-1] = _merge(queue[-1], message)
                else:
                    queue.append(message)
            for node in order:
                for message in merged[node]:
                    TCPTransport.send(self, node, message)

    def _onNodeDisconnected(self, node: Any) -> None:
        super()._onNodeDisconnected(node)
        if self.disconnect_hook is not None:
            self.disconnect_hook(node)

    def _onMessageReceived(self, node: Any, message: Any) -> None:
        if self.inbound_hook is None:
            super()._onMessageReceived(node, message)
            return
        self.inbound_hook(node, message,
                          lambda msg: TCPTransport._onMessageReceived(self, node, msg))


def _is_plain_append(message: Any) -> bool:
    return (isinstance(message, dict) and message.get("type") == "append_entries"
            and "prevLogIdx" in message and "transmission" not in message
            and "serialized" not in message)


def ack_from_other_term(message: Any, current_term: int) -> bool:
    """Whether `message` is an acknowledgement stamped with a term other than
    `current_term`. pysyncobj's acknowledgements carry no term, so one delayed on a TCP
    connection (a partition drops packets; TCP delivers them after it heals) could
    reach its addressee after it became leader again in a later term, and raise that
    follower's match index for entries the follower has since replaced. Raft ignores
    responses of other terms. Unstamped acknowledgements (older peers) pass."""
    return _is_ack(message) and message.get(ACK_TERM, current_term) != current_term


def is_plain_ack(message: Any) -> bool:
    return (isinstance(message, dict) and message.get("type") == "next_node_idx"
            and message.get("success") and not message.get("reset"))


def _is_ack(message: Any) -> bool:
    return isinstance(message, dict) and message.get("type") == "next_node_idx"


def _mergeable(first: Any, second: Any) -> bool:
    if is_plain_ack(first) and is_plain_ack(second):
        return second["next_node_idx"] >= first["next_node_idx"]
    if not (_is_plain_append(first) and _is_plain_append(second)):
        return False
    if first["term"] != second["term"]:
        return False
    entries = first.get("entries") or []
    last_idx = entries[-1][1] if entries else first["prevLogIdx"]
    last_term = entries[-1][2] if entries else first["prevLogTerm"]
    return second["prevLogIdx"] == last_idx and second["prevLogTerm"] == last_term


def _merge(first: Any, second: Any) -> Any:
    if is_plain_ack(first):
        return second
    merged = dict(first)
    merged["entries"] = list(first.get("entries") or []) + list(second.get("entries") or [])
    merged["commit_index"] = max(first["commit_index"], second["commit_index"])
    return merged
