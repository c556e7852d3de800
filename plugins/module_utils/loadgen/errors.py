# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""How a request or a run fails: fortio's code and the kinds of error a run counts, and
the exceptions behind them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import socket
import ssl

# fortio's code for a call that got no HTTP status (connection error, timeout, bad response).
SOCKET_ERROR = -1
ERROR_KINDS = ("timeout", "connection_refused", "connection_reset", "protocol", "tls", "not_sent",
               "other")


class LoadError(Exception):
    """The run could not start (for example, the host name does not resolve), or one of its
    worker processes failed."""


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.x response."""


class ClosedEarly(Exception):
    """The connection ended before the response did; `received` says how many bytes came."""

    def __init__(self, received):
        super().__init__(f"connection closed after {received} bytes of response")
        self.received = received


class Expired(Exception):
    """No complete response within the request timeout."""


def error_kind(error):
    """The ERROR_KINDS entry for the error that ended a request."""
    if isinstance(error, (asyncio.TimeoutError, Expired, socket.timeout)):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(error, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, ClosedEarly)):
        return "connection_reset"
    if isinstance(error, ProtocolError):
        return "protocol"
    if isinstance(error, ssl.SSLError):
        return "tls"
    return "other"
