# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""HTTP/1.1 on the wire: the Target of a URL, the bytes of a request, and a parser for the
responses of one keep-alive connection."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import urlsplit

from ansible_collections.meshtune.mesh.plugins.module_utils.loadgen.errors import ProtocolError

MAX_HEAD_BYTES = 64 * 1024
USER_AGENT = "meshtune.mesh load_test"
# Parsed response heads kept per run: servers send the same head again and again, except for
# the Date header, which changes once a second.
HEAD_CACHE_SIZE = 64


class Target:
    """Where the requests go: scheme, host, port, request path and Host header."""

    def __init__(self, scheme, host, port, path, host_header):
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.host_header = host_header


def parse_url(url):
    """The Target of an http:// or https:// URL; ValueError saying what is wrong otherwise."""
    if not isinstance(url, str) or not url or any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise ValueError("an http:// or https:// URL without spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError("an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL without credentials (send them with headers, e.g. Authorization)")
    try:
        port = parts.port
    except ValueError as err:
        raise ValueError("a URL with a port from 1 to 65535") from err
    host = parts.hostname
    if not host:
        raise ValueError("a URL with a host, such as http://127.0.0.1:8080/")
    if port == 0:
        raise ValueError("a URL with a port from 1 to 65535")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path, parts.netloc)


def build_request(target, method, headers, body):
    """The bytes of one request, built once and sent as is."""
    names = {name.lower() for name in headers}
    lines = [f"{method} {target.path} HTTP/1.1"]
    if "host" not in names:
        lines.append(f"Host: {target.host_header}")
    if "user-agent" not in names:
        lines.append(f"User-Agent: {USER_AGENT}")
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if (body or method in ("POST", "PUT", "PATCH")) and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


class ResponseReader:
    """Reads the responses of one connection, one at a time, from the bytes as they arrive,
    whatever their split: `begin` before each request, `feed` with each piece of bytes (True
    once the response is complete, ProtocolError if the bytes are not HTTP/1.x), and
    `ends_with_close` when the connection ends. Both transports use it."""

    def __init__(self, head_request, head_cache):
        self.head_request = head_request
        self.head_cache = head_cache
        self.buffer = bytearray()
        self.code = None
        self.mode = None
        self.remaining = 0
        self.keep_alive = True
        self.received = 0
        self.chunk_pos = 0
        self.in_trailer = False

    def begin(self):
        if self.buffer:
            self.buffer.clear()
        self.mode = None
        self.received = 0

    def ends_with_close(self):
        """Whether the end of the connection completes the response (a body without length)."""
        return self.mode == "close"

    def feed(self, data):
        """True when the response is complete."""
        self.received += len(data)
        if self.mode == "length":
            self.remaining -= len(data)
            if self.remaining < 0:
                raise ProtocolError("more bytes than Content-Length")
            return self.remaining == 0
        if self.mode is None and not self.buffer:
            # The usual case: the whole head in the first bytes; read it without copying.
            end = data.find(b"\r\n\r\n")
            if end >= 0:
                self._parse_head(data[:end])
                if self.mode == "length":
                    self.remaining -= len(data) - end - 4
                    if self.remaining < 0:
                        raise ProtocolError("more bytes than Content-Length")
                    return self.remaining == 0
                if self.mode == "interim":
                    self.mode = None
                data = data[end + 4:]
        self.buffer += data
        return self._feed_buffer()

    def _feed_buffer(self):
        while self.mode is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD_BYTES:
                    raise ProtocolError("response head larger than 64 KiB")
                return False
            self._parse_head(bytes(self.buffer[:end]))
            del self.buffer[:end + 4]
            if self.mode == "interim":
                self.mode = None
        if self.mode == "length":
            self.remaining -= len(self.buffer)
            self.buffer.clear()
            if self.remaining < 0:
                raise ProtocolError("more bytes than Content-Length")
            return self.remaining == 0
        if self.mode == "none":
            if self.buffer:
                raise ProtocolError("bytes after a response without body")
            return True
        if self.mode == "chunked":
            return self._parse_chunks()
        self.buffer.clear()
        return False  # "close": the body ends with the connection

    def _parse_head(self, head):
        """Status code and how the body ends, from the head cache when the server sent the same
        head before (it usually has: only its Date changes, once a second)."""
        parsed = self.head_cache.get(head)
        if parsed is None:
            parsed = _read_head(head, self.head_request)
            if len(self.head_cache) >= HEAD_CACHE_SIZE:
                self.head_cache.clear()
            self.head_cache[head] = parsed
        self.code, self.mode, self.remaining, self.keep_alive = parsed
        if self.mode == "chunked":
            self.chunk_pos = 0
            self.in_trailer = False

    def _parse_chunks(self):
        buffer = self.buffer
        position = self.chunk_pos
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                if len(buffer) - position > MAX_HEAD_BYTES:
                    raise ProtocolError("chunk header too long")
                self.chunk_pos = position
                return False
            if self.in_trailer:
                if line_end == position:
                    if line_end + 2 != len(buffer):
                        raise ProtocolError("bytes after the last chunk")
                    return True
                position = line_end + 2
                continue
            size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as err:
                raise ProtocolError("bad chunk size") from err
            if size == 0:
                self.in_trailer = True
                position = line_end + 2
                continue
            data_end = line_end + 2 + size
            if len(buffer) < data_end + 2:
                self.chunk_pos = position
                return False
            if buffer[data_end:data_end + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            # Drop what was read, so long bodies do not pile up.
            del buffer[:data_end + 2]
            position = 0


def _read_head(head, head_request):
    """(code, how the body ends, Content-Length, keep-alive) of a response head. Looks up only
    the three headers that matter, in the lower-cased head, instead of splitting every line."""
    line_end = head.find(b"\r\n")
    status = (head if line_end < 0 else head[:line_end]).split(None, 2)
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or len(status[1]) != 3 or \
            not status[1].isdigit():
        raise ProtocolError("not an HTTP/1.x status line")
    code = int(status[1])
    fields = head[line_end:].lower() if line_end >= 0 else b""
    length = _field(fields, b"\r\ncontent-length:")
    if length is not None:
        try:
            length = int(length)
        except ValueError as err:
            raise ProtocolError("bad Content-Length") from err
        if length < 0:
            raise ProtocolError("bad Content-Length")
    chunked = b"chunked" in (_field(fields, b"\r\ntransfer-encoding:") or b"")
    connection = _field(fields, b"\r\nconnection:") or b""
    if 100 <= code < 200 and code != 101:
        return code, "interim", 0, True
    keep_alive = b"keep-alive" in connection if status[0] == b"HTTP/1.0" else \
        b"close" not in connection
    if head_request or code in (204, 304) or code < 200:
        return code, "none", 0, keep_alive
    if chunked:
        return code, "chunked", 0, keep_alive
    if length is not None:
        return code, "length", length, keep_alive
    return code, "close", 0, False


def _field(fields, name):
    """The value of the first header `name` (b"\\r\\nname:", lower case) in `fields`, or None."""
    start = fields.find(name)
    if start < 0:
        return None
    start += len(name)
    end = fields.find(b"\r\n", start)
    return fields[start:end if end >= 0 else len(fields)].strip()
