"""Syntax checks for names, labels and keys, with Kubernetes' rules and wording.

Each `*_problems(value)` returns a list of reasons (empty when valid); pure.
"""

from __future__ import annotations

import ipaddress
import re

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_IANA_SVC_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_ENV_VAR_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def dns1123_label_problems(value: str) -> list[str]:
    """RFC 1123 label: at most 63 lowercase alphanumerics or '-', alphanumeric at both ends."""
    problems = []
    if len(value) > LABEL_MAX:
        problems.append(f"must be no more than {LABEL_MAX} characters")
    if not _DNS1123_LABEL.fullmatch(value):
        problems.append(
            f"{value!r} is not a valid DNS-1123 label: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return problems


def dns1123_subdomain_problems(value: str) -> list[str]:
    """RFC 1123 subdomain: dot-separated labels, at most 253 characters."""
    problems = []
    if len(value) > SUBDOMAIN_MAX:
        problems.append(f"must be no more than {SUBDOMAIN_MAX} characters")
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        problems.append(
            f"{value!r} is not a valid DNS-1123 subdomain: lowercase letters, digits, '-' "
            "and '.', starting and ending with a letter or digit"
        )
    return problems


def dns1035_label_problems(value: str) -> list[str]:
    """RFC 1035 label (Service names): like a DNS-1123 label but starting with a letter."""
    problems = []
    if len(value) > LABEL_MAX:
        problems.append(f"must be no more than {LABEL_MAX} characters")
    if not _DNS1035_LABEL.fullmatch(value):
        problems.append(
            f"{value!r} is not a valid DNS-1035 label: lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit"
        )
    return problems


def qualified_name_problems(value: str) -> list[str]:
    """Label/annotation key: optional DNS subdomain prefix + '/' + name of <= 63 chars."""
    prefix, slash, name = value.rpartition("/")
    problems = []
    if slash:
        if not prefix:
            problems.append(f"{value!r}: prefix part must be non-empty")
        else:
            problems.extend(f"prefix part {p}" for p in dns1123_subdomain_problems(prefix))
    if not name:
        problems.append(f"{value!r}: name part must be non-empty")
        return problems
    if len(name) > LABEL_MAX:
        problems.append(f"{value!r}: name part must be no more than {LABEL_MAX} characters")
    if not _QUALIFIED_NAME_PART.fullmatch(name):
        problems.append(
            f"{value!r} is not a valid qualified name: alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric, with an optional DNS subdomain "
            "prefix and '/'"
        )
    return problems


def label_value_problems(value: str) -> list[str]:
    """Label value: empty, or <= 63 alphanumerics, '-', '_', '.', alphanumeric at both ends."""
    problems = []
    if len(value) > LABEL_MAX:
        problems.append(f"{value!r}: must be no more than {LABEL_MAX} characters")
    if not _LABEL_VALUE.fullmatch(value):
        problems.append(
            f"{value!r} is not a valid label value: alphanumerics, '-', '_' or '.', "
            "starting and ending with an alphanumeric"
        )
    return problems


def port_name_problems(value: str) -> list[str]:
    """IANA service name (named ports): <= 15 chars, lowercase alphanumerics and '-',
    at least one letter, no '--'."""
    problems = []
    if len(value) > 15:
        problems.append(f"{value!r} is not a valid port name: must be no more than 15 characters")
    if not _IANA_SVC_NAME.fullmatch(value):
        problems.append(
            f"{value!r} is not a valid port name: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    elif "--" in value:
        problems.append(f"{value!r} is not a valid port name: must not contain '--'")
    elif not any(c.isalpha() for c in value):
        problems.append(f"{value!r} is not a valid port name: must contain a letter")
    return problems


def env_var_name_problems(value: str) -> list[str]:
    """Environment variable name: letters, digits, '_', '-', '.', not starting with a digit."""
    if _ENV_VAR_NAME.fullmatch(value):
        return []
    return [
        f"{value!r} is not a valid environment variable name: letters, digits, '_', '-' "
        "or '.', not starting with a digit"
    ]


def config_key_problems(value: str) -> list[str]:
    """ConfigMap/Secret key: alphanumerics, '-', '_', '.'; not '.' or '..'; <= 253 chars."""
    problems = []
    if len(value) > SUBDOMAIN_MAX:
        problems.append(f"must be no more than {SUBDOMAIN_MAX} characters")
    if not _CONFIG_KEY.fullmatch(value):
        problems.append(f"{value!r} is not a valid key: alphanumerics, '-', '_' or '.'")
    elif value in (".", ".."):
        problems.append(f"{value!r} is not a valid key")
    return problems


def ipv4_problems(value: str) -> list[str]:
    """A dotted-quad IPv4 address."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return [f"{value!r} is not a valid IPv4 address"]
    return []


def ip_problems(value: str) -> list[str]:
    """An IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [f"{value!r} is not a valid IP address"]
    return []


def cidr_problems(value: str) -> list[str]:
    """A network in CIDR notation (10.244.1.0/24), host bits zero."""
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        return [f"{value!r} is not a valid CIDR (for example 10.244.1.0/24)"]
    return []


def valid_port(value: int) -> bool:
    """1..65535."""
    return 1 <= value <= 65535
