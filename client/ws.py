"""A minimal RFC 6455 websocket client (stdlib sockets), enough for ComfyUI's ``/ws`` feed.

Client frames are masked; server frames are not. Text and binary messages (ComfyUI sends previews as
binary) are returned whole (fragments joined); pings are answered; a close frame ends the stream.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
import urllib.parse
from typing import Callable, Optional, Union

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebSocketError(ConnectionError):
    """The server broke the websocket protocol or closed the connection."""


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value a server must answer for ``key``."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def encode_frame(opcode: int, payload: bytes, mask: bool = True, fin: bool = True,
                 mask_key: Optional[bytes] = None) -> bytes:
    """One frame; clients must mask (``mask_key`` fixes the key, for tests)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", length)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + _apply_mask(payload, key)


def _apply_mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def decode_frame(read: Callable[[int], bytes]) -> tuple[bool, int, bytes]:
    """(fin, opcode, payload) of the next frame; ``read(n)`` returns exactly n bytes."""
    b0, b1 = read(2)
    if b0 & 0x70:
        raise WebSocketError(f"reserved bits set in frame header {b0:#04x} (no extension was negotiated)")
    fin, opcode, masked, length = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read(8))[0]
    if opcode >= 0x8 and (length > 125 or not fin):
        raise WebSocketError(f"control frame {opcode:#x} fragmented or longer than 125 bytes")
    key = read(4) if masked else b""
    payload = read(length) if length else b""
    return fin, opcode, (_apply_mask(payload, key) if masked else payload)


def frame_size(buffer: bytes) -> Optional[int]:
    """Length of the frame starting ``buffer`` (header included), None until its header is there."""
    if len(buffer) < 2:
        return None
    length, masked = buffer[1] & 0x7F, buffer[1] & 0x80
    header = 2 + (2 if length == 126 else 8 if length == 127 else 0) + (4 if masked else 0)
    if len(buffer) < header - (4 if masked else 0):
        return None
    if length == 126:
        length = struct.unpack("!H", buffer[2:4])[0]
    elif length == 127:
        length = struct.unpack("!Q", buffer[2:10])[0]
    return header + length


class WebSocket:
    """A connected websocket; ``recv()`` returns str (text) or bytes (binary), None once closed."""

    def __init__(self, url: str, timeout: Optional[float] = 30.0, headers: Optional[dict] = None):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"websocket URL must start with ws:// or wss://: {url!r}")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        sock = socket.create_connection((parts.hostname, port), timeout=timeout)
        if parts.scheme == "wss":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        self.sock, self._buffer, self.closed = sock, b"", False
        self._parts: list[bytes] = []  # fragments of a message still arriving
        self._kind: Optional[int] = None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        key = base64.b64encode(os.urandom(16)).decode()
        host = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status, reply_headers = self._read_handshake()
        if status != 101:
            raise WebSocketError(f"{url}: server answered HTTP {status} instead of switching to websocket")
        if reply_headers.get("sec-websocket-accept") != accept_key(key):
            raise WebSocketError(f"{url}: wrong Sec-WebSocket-Accept in the handshake reply")

    def _read_handshake(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketError("connection closed during the websocket handshake")
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0, headers

    def _next_frame(self) -> tuple[bool, int, bytes]:
        """The next frame, taken from the buffer only once it is complete: a timeout while a frame
        is still arriving leaves the buffer intact for the next call."""
        while True:
            size = frame_size(self._buffer)
            if size is not None and len(self._buffer) >= size:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WebSocketError("connection closed by the server")
            self._buffer += chunk
        frame, self._buffer = self._buffer[:size], self._buffer[size:]
        view = memoryview(frame)
        position = 0

        def read(n: int) -> bytes:
            nonlocal position
            position += n
            return bytes(view[position - n:position])
        return decode_frame(read)

    def settimeout(self, timeout: Optional[float]) -> None:
        self.sock.settimeout(timeout)

    def send(self, message: Union[str, bytes]) -> None:
        opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
        self.sock.sendall(encode_frame(opcode, message.encode() if isinstance(message, str) else message))

    def recv(self) -> Optional[Union[str, bytes]]:
        """The next whole message; raises socket.timeout when none arrives in time (a message
        half received is kept and completed by the next call)."""
        while not self.closed:
            fin, opcode, payload = self._next_frame()
            if opcode == OP_PING:
                self.sock.sendall(encode_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                self.close(payload[:2] or b"\x03\xe8")
                return None
            if opcode in (OP_TEXT, OP_BINARY):
                if self._kind is not None:
                    raise WebSocketError("a new message started inside a fragmented one")
                self._kind = opcode
            elif opcode != OP_CONT or self._kind is None:
                raise WebSocketError(f"unexpected frame opcode {opcode:#x}")
            self._parts.append(payload)
            if fin:
                data, kind = b"".join(self._parts), self._kind
                self._parts, self._kind = [], None
                return data.decode("utf-8") if kind == OP_TEXT else data
        return None

    def close(self, code: bytes = b"\x03\xe8") -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.sendall(encode_frame(OP_CLOSE, code))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
