# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""How a request or a run fails: fortio's code and the kinds of error a run counts, which side
of the connection each kind is on, and the exceptions behind them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import errno
import socket
import ssl

# fortio's code for a call that got no HTTP status (connection error, timeout, bad response).
SOCKET_ERROR = -1
# The kinds of error both engines report (fortio's own results tell none apart: "other").
ERROR_KINDS = ("timeout", "connection_refused", "connection_reset", "protocol", "tls", "not_sent",
               "other")
# The local engine also tells apart requests that failed because the host sending the load ran
# out of something of its own: file descriptors, local ports or socket memory.
LOCAL_ERROR_KINDS = ("timeout", "connection_refused", "connection_reset", "protocol", "tls",
                     "client_exhausted", "not_sent", "other")
# Requests that never reached the target's HTTP server, for a reason on the sending side or in
# between: nothing listening, a TLS handshake or certificate check that failed, the sender's own
# limits, or another OS error (network unreachable, ...). A server that answered badly, too late
# or not at all (timeout, connection_reset, protocol, and non-2xx codes) is a server error;
# not_sent, a request that was due but never sent, is neither: it measures the schedule.
CLIENT_ERROR_KINDS = ("connection_refused", "tls", "client_exhausted", "other")
SERVER_ERROR_KINDS = ("timeout", "connection_reset", "protocol")
# errno values that mean the sending host ran out of a resource of its own.
EXHAUSTION_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS,
                               errno.ENOMEM))


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
    """The LOCAL_ERROR_KINDS entry for the error that ended a request."""
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
    if isinstance(error, OSError) and error.errno in EXHAUSTION_ERRNOS:
        return "client_exhausted"
    return "other"


def describe_error(error, timeout):
    """The error that ended a request, in words, for the first error of each kind in a result."""
    if isinstance(error, (asyncio.TimeoutError, Expired, socket.timeout)):
        return f"no complete response within the timeout ({timeout:g} s)"
    if isinstance(error, ssl.SSLCertVerificationError) and getattr(error, "verify_message", None):
        return f"TLS certificate verification failed: {error.verify_message}"
    text = str(error)
    if isinstance(error, OSError) and error.errno is not None and error.strerror:
        text = f"{error.strerror} (errno {errno.errorcode.get(error.errno, error.errno)})"
    return text or type(error).__name__
