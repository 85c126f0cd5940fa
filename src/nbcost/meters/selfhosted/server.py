"""Which process serves a base URL on this machine: the pid listening on its port (psutil)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import psutil

__all__ = ["listening_pid"]

_ANY = {"0.0.0.0", "::", ""}


def _local_addresses() -> set[str]:
    addresses = {"127.0.0.1", "::1"}
    for entries in psutil.net_if_addrs().values():
        addresses.update(e.address.split("%")[0] for e in entries
                         if e.family in (socket.AF_INET, socket.AF_INET6))
    return addresses


def _host_addresses(host: str) -> set[str] | None:
    """The addresses ``host`` names on this machine, or None when it is another machine."""
    if host in ("localhost", ""):
        return {"127.0.0.1", "::1"}
    try:
        address = ipaddress.ip_address(host)
        names = {str(address)}
    except ValueError:
        try:
            names = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except OSError:
            return None
    local = _local_addresses()
    return names if names & local or any(ipaddress.ip_address(n).is_loopback for n in names) else None


def listening_pid(base_url: str) -> int | None:
    """The pid of the process listening on ``base_url``'s host and port here; None when the
    server is on another machine or its process cannot be seen."""
    parts = urlsplit(base_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    hosts = _host_addresses((parts.hostname or "").lower())
    if hosts is None:
        return None
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.pid and (conn.laddr.ip in _ANY or conn.laddr.ip in hosts
                         or ipaddress.ip_address(conn.laddr.ip).is_loopback):
            return conn.pid
    return None
