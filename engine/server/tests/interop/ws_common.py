"""A minimal XMPP-over-WebSocket (RFC 7395) client on the `websockets` package, for the
interop tests: every message it receives must parse on its own as an XML document (RFC 7395
3.3.3), which is checked by parsing each with ElementTree.

Also raw frames over a plain socket (`RawWs`), to send what `websockets` never would
(unmasked, binary, oversized frames) and read the server's close code.
"""
import asyncio
import base64
import os
import struct
import xml.etree.ElementTree as ET

import websockets

FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
STREAMS = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SM = "urn:xmpp:sm:3"
TIMEOUT_S = 10


def tag(ns, name):
    return "{%s}%s" % (ns, name)


class WsXmpp:
    """One RFC 7395 session."""

    def __init__(self, url, domain):
        self.url = url
        self.domain = domain
        self.ws = None
        self.inbox = []  # parsed elements not consumed by expect()
        self.jid = None

    async def connect(self):
        self.ws = await websockets.connect(self.url, subprotocols=["xmpp"])
        assert self.ws.subprotocol == "xmpp", self.ws.subprotocol

    async def send(self, text):
        await self.ws.send(text)

    async def recv(self, timeout=TIMEOUT_S):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"binary message from the server: {raw!r}"
        return ET.fromstring(raw)  # each message is a document of its own

    async def expect(self, pred, what, timeout=TIMEOUT_S):
        """The first element (queued or new) for which pred is true; others are queued."""
        for i, el in enumerate(self.inbox):
            if pred(el):
                return self.inbox.pop(i)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"waiting for {what}; got {[e.tag for e in self.inbox]}")
            el = await self.recv(left)
            if pred(el):
                return el
            self.inbox.append(el)

    async def open(self):
        await self.send(f"<open xmlns='{FRAMING}' to='{self.domain}' version='1.0'/>")
        opened = await self.expect(lambda e: e.tag == tag(FRAMING, "open"), "<open/>")
        features = await self.expect(lambda e: e.tag == tag(STREAMS, "features"), "features")
        return opened, features

    async def login(self, jid, password, resource, sm_resume=False):
        """SASL PLAIN, restart, bind, optional XEP-0198 with resumption; returns features."""
        await self.connect()
        user = jid.split("@")[0]
        await self.open()
        creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.send(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{creds}</auth>")
        await self.expect(lambda e: e.tag == tag(SASL, "success"), "SASL success")
        _, features = await self.open()
        await self.send(
            f"<iq type='set' id='b1' xmlns='{CLIENT}'><bind xmlns='{BIND}'>"
            f"<resource>{resource}</resource></bind></iq>"
        )
        bound = await self.expect(lambda e: e.get("id") == "b1", "bind result")
        assert bound.get("type") == "result", ET.tostring(bound)
        self.jid = bound.find(f"{tag(BIND, 'bind')}/{tag(BIND, 'jid')}").text
        if sm_resume:
            await self.send(f"<enable xmlns='{SM}' resume='true'/>")
            enabled = await self.expect(lambda e: e.tag == tag(SM, "enabled"), "<enabled/>")
            self.sm_id = enabled.get("id")
        return features

    async def close(self):
        await self.send(f"<close xmlns='{FRAMING}'/>")
        closed = await self.expect(lambda e: e.tag == tag(FRAMING, "close"), "<close/>")
        await self.ws.close()
        return closed


class RawWs:
    """A WebSocket conn on a bare socket: the handshake, then any frames we like."""

    def __init__(self, host, port, path="/xmpp-websocket"):
        self.host, self.port, self.path = host, port, path

    async def connect(self):
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: xmpp\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT_S)
        assert head.startswith(b"HTTP/1.1 101"), head

    def frame(self, opcode, payload, masked=True, length=None):
        length = len(payload) if length is None else length
        first = bytes([0x80 | opcode])
        bit = 0x80 if masked else 0
        if length < 126:
            header = first + bytes([bit | length])
        elif length < 65536:
            header = first + bytes([bit | 126]) + struct.pack(">H", length)
        else:
            header = first + bytes([bit | 127]) + struct.pack(">Q", length)
        if not masked:
            return header + payload
        key = os.urandom(4)
        return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    async def send(self, data):
        self.writer.write(data)
        await self.writer.drain()

    async def close_code(self):
        """Reads frames until the server's close frame; returns (code, texts seen before)."""
        texts = []
        while True:
            head = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT_S)
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            assert head[1] & 0x80 == 0, "server frames are never masked"
            if length == 126:
                length = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            if opcode == 0x8:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                return code, texts
            if opcode == 0x1:
                texts.append(payload.decode())

    async def eof(self):
        """Whether the server closed the TCP conn after its close frame."""
        rest = await asyncio.wait_for(self.reader.read(), TIMEOUT_S)
        return rest == b""
