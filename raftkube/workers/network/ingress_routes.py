"""Pure: Ingress rules -> a routing table, and (host, path) -> backend service port.

Matching follows networking.k8s.io/v1:
- host: an exact host beats a wildcard (`*.example.com` matches one label only); a rule
  without host matches every host. Port and case are ignored.
- path: Exact matches the whole path; Prefix matches by `/`-separated elements (`/foo`
  matches `/foo`, `/foo/`, `/foo/bar`, not `/foobar`). The longest match wins; at equal
  length Exact beats Prefix. ImplementationSpecific is treated as Prefix.
- nothing matches: the default backend of the first Ingress (by namespace/name) that has
  one; none: no route (the proxy answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass

from raftkube.workers.network.model import ModelError

PATH_TYPES = ("Prefix", "Exact", "ImplementationSpecific")


@dataclass(frozen=True)
class BackendRef:
    """A Service port behind an Ingress path: `port` is a number or a port name."""

    namespace: str
    service: str
    port: int | str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True)
class IngressPath:
    path: str
    path_type: str
    backend: BackendRef


@dataclass(frozen=True)
class IngressRule:
    """host "" = every host; `*.example.com` = one-label wildcard."""

    host: str
    paths: tuple[IngressPath, ...]


@dataclass(frozen=True)
class Ingress:
    namespace: str
    name: str
    rules: tuple[IngressRule, ...] = ()
    default_backend: BackendRef | None = None


@dataclass(frozen=True)
class _Entry:
    path: str
    exact: bool
    backend: BackendRef


@dataclass(frozen=True)
class RouteTable:
    """Immutable: host -> entries sorted best-first; "" holds host-less rules."""

    exact_hosts: dict[str, tuple[_Entry, ...]]
    wildcard_hosts: dict[str, tuple[_Entry, ...]]
    any_host: tuple[_Entry, ...]
    default_backend: BackendRef | None


def _sort_key(entry: _Entry) -> tuple[int, int]:
    return (-len(entry.path.rstrip("/") if not entry.exact else entry.path), 0 if entry.exact
            else 1)


def build_route_table(ingresses: list[Ingress] | tuple[Ingress, ...]) -> RouteTable:
    """Pure: the routing table for these Ingresses. Raises ModelError naming the field."""
    exact: dict[str, list[_Entry]] = {}
    wildcard: dict[str, list[_Entry]] = {}
    any_host: list[_Entry] = []
    default: BackendRef | None = None
    for ing in sorted(ingresses, key=lambda i: (i.namespace, i.name)):
        base = f"ingresses[{ing.namespace}/{ing.name}]"
        if default is None and ing.default_backend is not None:
            default = ing.default_backend
        for r, rule in enumerate(ing.rules):
            host = rule.host.lower().rstrip(".")
            if "*" in host and not (host.startswith("*.") and "*" not in host[2:]):
                raise ModelError(f"{base}.rules[{r}].host: {rule.host!r}: a wildcard must be "
                                 "the whole first label")
            for p, ipath in enumerate(rule.paths):
                path_field = f"{base}.rules[{r}].http.paths[{p}]"
                if ipath.path_type not in PATH_TYPES:
                    raise ModelError(f"{path_field}.pathType: {ipath.path_type!r} is not one "
                                     f"of {PATH_TYPES}")
                if not ipath.path.startswith("/"):
                    raise ModelError(f"{path_field}.path: {ipath.path!r} must start with '/'")
                entry = _Entry(ipath.path, ipath.path_type == "Exact", ipath.backend)
                if not host:
                    any_host.append(entry)
                elif host.startswith("*."):
                    wildcard.setdefault(host[2:], []).append(entry)
                else:
                    exact.setdefault(host, []).append(entry)
    return RouteTable(
        exact_hosts={h: tuple(sorted(e, key=_sort_key)) for h, e in exact.items()},
        wildcard_hosts={h: tuple(sorted(e, key=_sort_key)) for h, e in wildcard.items()},
        any_host=tuple(sorted(any_host, key=_sort_key)), default_backend=default)


def _path_matches(entry: _Entry, path: str) -> bool:
    if entry.exact:
        return path == entry.path
    prefix = entry.path.rstrip("/")
    if not prefix:
        return True
    return path == prefix or path.startswith(prefix + "/")


def match_route(table: RouteTable, host: str, path: str) -> BackendRef | None:
    """Pure: the backend for a request's Host header and path (query string ignored)."""
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    host = host.lower().rstrip(".")
    path = path.split("?", 1)[0] or "/"
    candidates: list[tuple[_Entry, ...]] = []
    if host in table.exact_hosts:
        candidates.append(table.exact_hosts[host])
    if "." in host:
        parent = host.split(".", 1)[1]
        if parent in table.wildcard_hosts:
            candidates.append(table.wildcard_hosts[parent])
    candidates.append(table.any_host)
    for entries in candidates:
        for entry in entries:
            if _path_matches(entry, path):
                return entry.backend
    return table.default_backend
