"""Who is calling: a user name and the groups it belongs to.

The same value comes out of every authenticator (bearer token, client certificate) and
goes into the authorizer and the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
MASTERS_GROUP = "system:masters"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
AUTHENTICATED_GROUP = "system:authenticated"


@dataclass(frozen=True)
class Principal:
    """An authenticated identity.

    name: the user name, e.g. "admin", "bob" or "system:node:w1".
    groups: the groups the user belongs to, e.g. ("system:nodes",).
    via: how it was authenticated: "token", "certificate" or "internal".
    """

    name: str
    groups: tuple[str, ...] = ()
    via: str = "token"

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def node_name(self) -> str | None:
        """The node name when this is a node identity (`system:node:NAME` in
        `system:nodes`), else None."""
        if self.name.startswith(NODE_USER_PREFIX) and NODES_GROUP in self.groups:
            return self.name[len(NODE_USER_PREFIX):]
        return None

    def describe(self) -> str:
        """How messages name this principal: `node "w1"` or `user "bob"`."""
        node = self.node_name
        if node is not None:
            return f'node "{node}"'
        return f'user "{self.name}"'


def node_principal(node_name: str, via: str = "token") -> Principal:
    """The identity of worker `node_name`."""
    return Principal(f"{NODE_USER_PREFIX}{node_name}", (NODES_GROUP,), via)
