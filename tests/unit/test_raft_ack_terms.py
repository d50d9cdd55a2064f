"""Acknowledgements carry their sender's term, and a replica ignores those of other terms.

pysyncobj's next_node_idx messages have no term. One held up on a TCP connection during a
partition (the packets are dropped and sent again once it heals) could reach its
addressee after it had become leader again in a later term; pysyncobj would then raise
the follower's match index for entries the follower has since replaced.
"""

from __future__ import annotations

from types import SimpleNamespace

from pysyncobj.tcp_connection import CONNECTION_STATE

from raftkube.consensus.raft_glue import _LEADER, RaftNode
from raftkube.consensus.transport import ACK_TERM, OutboxTransport, ack_from_other_term


def ack(next_index: int, term: int | None = None) -> dict:
    message = {"type": "next_node_idx", "next_node_idx": next_index, "reset": False,
               "success": True}
    if term is not None:
        message[ACK_TERM] = term
    return message


def test_only_acknowledgements_stamped_with_another_term_are_from_another_term() -> None:
    assert ack_from_other_term(ack(10, term=5), current_term=7)
    assert ack_from_other_term(ack(10, term=8), current_term=7)
    assert not ack_from_other_term(ack(10, term=7), current_term=7)
    assert not ack_from_other_term(ack(10), current_term=7), "unstamped: an older peer"
    append = {"type": "append_entries", "term": 5, ACK_TERM: 5, "prevLogIdx": 1}
    assert not ack_from_other_term(append, current_term=7)


def test_the_outbox_stamps_acknowledgements_with_the_current_term() -> None:
    transport = OutboxTransport.__new__(OutboxTransport)
    transport._outbox = []
    transport._connections = {"m2": SimpleNamespace(state=CONNECTION_STATE.CONNECTED)}
    term = 7
    transport.ack_term = lambda: term
    append = {"type": "append_entries", "term": 7, "prevLogIdx": 3, "prevLogTerm": 7}
    assert transport.send("m2", ack(4))
    assert transport.send("m2", append)
    term = 8
    assert transport.send("m2", ack(5))
    assert not transport.send("m3", ack(6)), "no connection: nothing queued"
    sent = [message for _node, message in transport._outbox]
    assert [m.get(ACK_TERM) for m in sent] == [7, None, 8]
    assert sent[1] is append


def leader(term: int) -> RaftNode:
    """A RaftNode with only what its inbound hook reads: leading in `term`."""
    node = RaftNode.__new__(RaftNode)
    node._SyncObj__raftCurrentTerm = term
    node._SyncObj__raftState = _LEADER
    node._SyncObj__raftNextIndex = {"m2": 20}
    return node


def test_a_leader_drops_an_acknowledgement_of_an_earlier_term() -> None:
    node, delivered = leader(term=7), []
    node._rk_inbound("m2", ack(30, term=5), delivered.append)
    assert delivered == [], "a late acknowledgement from term 5 reached pysyncobj"
    node._rk_inbound("m2", ack(21, term=7), delivered.append)
    assert [m["next_node_idx"] for m in delivered] == [21]
