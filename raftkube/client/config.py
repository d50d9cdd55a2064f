"""Settings of one SDK client."""

from __future__ import annotations

from dataclasses import dataclass, field

from raftkube.client.retry import RetryConfig


@dataclass(frozen=True)
class ClientOptions:
    """How a Client behaves (every field has a working default).

    namespace: the namespace used when a call names none (namespaced kinds only).
    retry: bounds of the unary retry loop (attempts, total deadline, back-off, per-call
        timeout).
    watch_idle_timeout: seconds without any message (watches ask for BOOKMARKs, sent every
        few seconds while idle) after which a watch stream is treated as dead and reopened
        on another master — this catches a master that hangs without closing the socket.
    watch_give_up: seconds a watch keeps trying to reconnect without reaching any master
        before raising Unavailable.
    create_clock_skew: seconds the masters' clocks may lag ours when deciding whether an
        object met after an interrupted create is the one this client created.
    list_page_size: objects per List page when reading everything (0: one page).
    linearizable_reads: get/list read through the leader after a read barrier (never stale,
        read-your-writes across masters and clients; one more hop) unless a call says
        otherwise. False: served by the master called (possibly a little behind).
    seed: seed for the back-off jitter (None: from the OS).
    random_start: start with a random master instead of the first one listed (spreads many
        clients, e.g. agents, over the masters); the config file's order is used otherwise.
    """

    namespace: str = "default"
    retry: RetryConfig = field(default_factory=RetryConfig)
    watch_idle_timeout: float = 20.0
    watch_give_up: float = 120.0
    create_clock_skew: float = 30.0
    list_page_size: int = 500
    linearizable_reads: bool = False
    seed: int | None = None
    random_start: bool = False


CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    # A restarted master is found again within seconds, not gRPC's default two minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
)
