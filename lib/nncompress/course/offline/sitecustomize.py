"""Loaded by every Python process started with this folder on PYTHONPATH (the notebook tests'
kernels): refuses any network connection that leaves this machine, so a notebook that tries to
download data or weights fails loudly instead of silently depending on the internet.
Loopback stays open (Jupyter kernels talk to their client over localhost ZMQ sockets)."""
import ipaddress
import socket

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


class NetworkDisabled(OSError):
    pass


def _is_local(host) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address):
    if isinstance(address, tuple) and not _is_local(address[0]):
        raise NetworkDisabled(f"network access disabled in tests: connect to {address!r}")


def _connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect(self, address)


def _connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _check(address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):
    if not _is_local(host if isinstance(host, str) else None):
        raise NetworkDisabled(f"network access disabled in tests: resolve {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect
socket.socket.connect_ex = _connect_ex
socket.getaddrinfo = _getaddrinfo
