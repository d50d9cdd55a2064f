"""Podman's container event stream (GET /events?stream=true) as ContainerEvents.

A reader thread parses the stream into a queue; the consumer polls the queue so it can
check its stop flag. Stopping shuts the socket down, which wakes the reader at once.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from queue import Empty, Queue
from urllib.parse import urlencode

from raftkube.workers.runtime.interface import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerEvent,
    ContainerRuntimeError,
    EventAction,
)
from raftkube.workers.runtime.podman_exec import API_PREFIX, connect_unix

PODMAN_ACTIONS = {"create": EventAction.CREATED, "start": EventAction.STARTED,
                  "died": EventAction.DIED, "remove": EventAction.REMOVED}


def parse_event(item: Mapping[str, object]) -> ContainerEvent | None:
    """One decoded Podman event as a ContainerEvent (None for actions we do not report)."""
    action = PODMAN_ACTIONS.get(str(item.get("Action") or item.get("status") or ""))
    if action is None:
        return None
    actor = item.get("Actor") if isinstance(item.get("Actor"), dict) else {}
    attributes = actor.get("Attributes") or {}  # type: ignore[union-attr]
    code = attributes.get("containerExitCode")
    nanos = item.get("timeNano") or int(str(item.get("time") or 0)) * 1_000_000_000
    return ContainerEvent(
        container_id=str(actor.get("ID") or item.get("id") or ""),  # type: ignore[union-attr]
        pod_uid=attributes.get(LABEL_POD_UID, ""),
        name=attributes.get(LABEL_CONTAINER_NAME, ""), action=action,
        exit_code=int(code) if action is EventAction.DIED and code not in (None, "") else None,
        at=datetime.fromtimestamp(int(str(nanos)) / 1e9, tz=UTC))


def stream_events(socket_path: str, filters: Mapping[str, list[str]],
                  stop: threading.Event) -> Iterator[ContainerEvent]:
    """Events matching `filters` from now on, until `stop` is set or the stream ends.
    Raises RuntimeUnavailableError (from connect) or ContainerRuntimeError on refusal."""
    sock = connect_unix(socket_path, None)
    conn = http.client.HTTPConnection("localhost")
    conn.sock = sock
    query = urlencode({"stream": "true", "filters": json.dumps(dict(filters))})
    conn.request("GET", f"{API_PREFIX}/events?{query}")
    response = conn.getresponse()
    if response.status != 200:
        body = response.read().decode(errors="replace")[:300]
        conn.close()
        raise ContainerRuntimeError(f"events: {response.status} {body}")
    queue: Queue[ContainerEvent | None] = Queue()
    reader = threading.Thread(target=_read, args=(response, queue), daemon=True,
                              name="podman-events")
    reader.start()
    try:
        while not stop.is_set():
            try:
                event = queue.get(timeout=0.5)
            except Empty:
                continue
            if event is None:
                return  # the service closed the stream
            yield event
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        reader.join(timeout=5)
        conn.close()


def _read(response: http.client.HTTPResponse, queue: Queue[ContainerEvent | None]) -> None:
    try:
        while line := response.readline():
            line = line.strip()
            if line:
                event = parse_event(json.loads(line))
                if event is not None:
                    queue.put(event)
    except (OSError, ValueError, http.client.HTTPException):
        pass  # the consumer shut the socket, or the service went away
    finally:
        queue.put(None)
