"""A WebSocket user (RFC 7395, the `websockets` package) and a TCP user (slixmpp) chat and see
each other's presence; bad frames close only their own session, with the right close code
or stream error; a XEP-0198 session is resumed over WebSocket.

Usage: ws_chat.py HOST XMPP_PORT HTTP_PORT DOMAIN WS_JID WS_PASSWORD TCP_JID TCP_PASSWORD
"""
import asyncio
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from slix_common import main, make_client  # noqa: E402
from ws_common import CLIENT, FRAMING, SM, STREAMS, RawWs, WsXmpp, tag  # noqa: E402

MAX_STANZA_BYTES = 65536


async def bad_frames(host, http_port, result):
    """Each bad frame on a fresh conn: the close code, and nothing else disturbed."""
    cases = {
        "unmasked": lambda ws: ws.frame(0x1, b"<presence/>", masked=False),
        "binary": lambda ws: ws.frame(0x2, b"<presence/>"),
        # Refused from the frame header: no payload is sent at all.
        "oversized": lambda ws: ws.frame(0x1, b"", length=MAX_STANZA_BYTES + 4096)[:14],
    }
    for name, make in cases.items():
        raw = RawWs(host, int(http_port))
        await raw.connect()
        await raw.send(make(raw))
        code, _ = await raw.close_code()
        result[f"close_{name}"] = code
        result[f"eof_{name}"] = await raw.eof()


async def stream_error(url, domain, result):
    """A wrong `<open/>` namespace: invalid-namespace as a standalone <stream:error>."""
    ws = WsXmpp(url, domain)
    await ws.connect()
    await ws.send("<open xmlns='urn:example:wrong' to='%s' version='1.0'/>" % domain)
    opened = await ws.expect(lambda e: e.tag == tag(FRAMING, "open"), "<open/>")
    error = await ws.expect(lambda e: e.tag == tag(STREAMS, "error"), "<stream:error/>")
    await ws.expect(lambda e: e.tag == tag(FRAMING, "close"), "<close/> after the error")
    result["stream_error"] = [child.tag.split("}")[1] for child in error]
    result["error_after_open"] = opened.get("from")


async def resume(url, domain, jid, password, tcp, tcp_jid, result):
    """XEP-0198 over WebSocket: the conn drops, a message arrives meanwhile, the session is
    resumed on a new WebSocket and the message comes."""
    first = WsXmpp(url, domain)
    await first.login(jid, password, "resumable", sm_resume=True)
    await first.send(f"<presence xmlns='{CLIENT}'/>")
    full = first.jid
    # Dropped without <close/> or a close frame: the session is detached, not ended.
    first.ws.transport.abort()
    tcp.send_message(mto=full, mbody="while you were away", mtype="chat")
    second = WsXmpp(url, domain)
    await second.connect()
    user = jid.split("@")[0]
    await second.open()
    creds = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    await second.send(
        f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
    )
    await second.expect(lambda e: e.tag.endswith("success"), "SASL success")
    await second.open()
    await second.send(f"<resume xmlns='{SM}' previd='{first.sm_id}' h='0'/>")
    resumed = await second.expect(
        lambda e: e.tag in (tag(SM, "resumed"), tag(SM, "failed")), "<resumed/>", timeout=15
    )
    result["resumed"] = resumed.tag == tag(SM, "resumed")
    body = await second.expect(
        lambda e: e.tag == tag(CLIENT, "message") and e.find(tag(CLIENT, "body")) is not None,
        "the message sent while away",
        timeout=15,
    )
    result["resumed_body"] = body.find(tag(CLIENT, "body")).text
    await second.close()


async def run(host, xmpp_port, http_port, domain, ws_jid, ws_password, tcp_jid, tcp_password):
    result = {}
    url = f"ws://{host}:{http_port}/xmpp-websocket"
    tcp = make_client(tcp_jid, tcp_password)
    tcp_presence = asyncio.get_running_loop().create_future()
    tcp_message = asyncio.get_running_loop().create_future()
    tcp.add_event_handler(
        "presence_available",
        lambda p: tcp_presence.done() or p["from"].bare != ws_jid or tcp_presence.set_result(p),
    )
    tcp.add_event_handler(
        "message",
        lambda m: tcp_message.done() or m["body"] == "" or tcp_message.set_result(m),
    )
    session_started = asyncio.get_running_loop().create_future()
    tcp.add_event_handler("session_start", lambda _: session_started.set_result(True))
    tcp.connect(host, int(xmpp_port))
    await asyncio.wait_for(session_started, 15)
    tcp.send_presence()

    ws = WsXmpp(url, domain)
    features = await ws.login(ws_jid, ws_password, "web")
    result["ws_jid"] = ws.jid
    result["features_sm"] = features.find(tag(SM, "sm")) is not None
    # Directed presence both ways: each side sees the other available.
    await ws.send(f"<presence xmlns='{CLIENT}' to='{tcp.boundjid.full}'/>")
    seen = await asyncio.wait_for(tcp_presence, 10)
    result["tcp_saw_ws_presence_from"] = str(seen["from"])
    tcp.send_presence(pto=ws.jid)
    presence = await ws.expect(lambda e: e.tag == tag(CLIENT, "presence"), "presence")
    result["ws_saw_tcp_presence_from"] = presence.get("from")
    # Chat both ways.
    await ws.send(
        f"<message xmlns='{CLIENT}' to='{tcp_jid}' type='chat' id='w1'>"
        "<body>hello from the web</body></message>"
    )
    got = await asyncio.wait_for(tcp_message, 10)
    result["tcp_got"] = got["body"]
    result["tcp_got_from"] = str(got["from"])
    tcp.send_message(mto=ws.jid, mbody="hello from tcp <&>", mtype="chat")
    msg = await ws.expect(
        lambda e: e.tag == tag(CLIENT, "message") and e.find(tag(CLIENT, "body")) is not None,
        "message from tcp",
    )
    result["ws_got"] = msg.find(tag(CLIENT, "body")).text

    # Bad conns: each closes alone; the WebSocket user above still chats afterwards.
    await bad_frames(host, http_port, result)
    await stream_error(url, domain, result)
    await ws.send(
        f"<message xmlns='{CLIENT}' to='{tcp_jid}' type='chat'><body>still here</body></message>"
    )
    still = asyncio.get_running_loop().create_future()
    tcp.add_event_handler(
        "message", lambda m: still.done() or m["body"] != "still here" or still.set_result(m)
    )
    await asyncio.wait_for(still, 10)
    result["still_chatting"] = True

    closed = await ws.close()
    result["ws_closed_with"] = closed.tag

    await resume(url, domain, ws_jid, ws_password, tcp, tcp_jid, result)
    tcp.disconnect()
    return result


if __name__ == "__main__":
    main(run, 8, __doc__, 60)
