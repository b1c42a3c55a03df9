#!/usr/bin/env python3
"""The slixmpp (TCP) side of the browser test (engine/server/tests/browser.rs): the peer of a
Converse.js user in headless Chromium (tests/browser/driver.mjs).

Once online (roster fetched, presence sent; it accepts and returns the browser user's
subscription, slixmpp's default) it prints {"online": true} on a line of its own, so the test
starts the browser only then. It waits for "hello from the browser" from BROWSER_JID and
answers "hello from slixmpp"; then waits for the image the browser shares (a chat message whose
XEP-0066 OOB URL, and body, is the XEP-0363 GET URL), downloads it over HTTP and compares it
byte for byte with IMAGE_PATH (the file the browser uploaded), and answers "image received
intact (N bytes)" only if identical ("image differs" otherwise, so the browser's wait fails).

Prints one JSON object last; exits 0 only if every step happened as described.

Usage: slix_browser_peer.py HOST PORT PEER_JID PEER_PASSWORD BROWSER_JID IMAGE_PATH
"""
import asyncio

import aiohttp
from slixmpp import JID

from slix_common import disconnect, main, make_client, online

HELLO = "hello from the browser"
REPLY = "hello from slixmpp"
# The browser is started after "online": its launch, page load and login take a while on a
# busy 2-core machine, so its first message gets longer than slix_common's TIMEOUT_S.
BROWSER_WAIT_S = 60


async def next_message(messages, browser_jid, what):
    """The next chat message with a body from `browser_jid` (chat states have no body)."""
    while True:
        try:
            msg = await asyncio.wait_for(messages.get(), BROWSER_WAIT_S)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {what} from {browser_jid} within {BROWSER_WAIT_S} s") from None
        if msg["body"] and JID(msg["from"]).bare == browser_jid:
            return msg


async def run(host, port, peer_jid, peer_pw, browser_jid, image_path):
    result = {}
    peer = make_client(peer_jid, peer_pw, ("xep_0030", "xep_0066", "xep_0199"))
    messages = asyncio.Queue(maxsize=64)
    peer.add_event_handler(
        "message", lambda msg: msg["type"] in ("chat", "normal") and messages.put_nowait(msg)
    )
    await online(host, port, peer, roster=True)
    print('{"online": true}', flush=True)
    try:
        hello = await next_message(messages, browser_jid, "hello")
        result["got"] = hello["body"]
        result["got_from"] = str(hello["from"])
        peer.send_message(mto=browser_jid, mbody=REPLY, mtype="chat")

        shared = await next_message(messages, browser_jid, "shared image")
        url = shared["oob"]["url"]
        if not url:
            raise AssertionError(f"the browser's second message carries no OOB URL: {shared}")
        result["image_url"] = url
        result["image_body_is_url"] = shared["body"] == url
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                result["download_status"] = response.status
                result["download_type"] = response.headers.get("Content-Type")
                data = await response.read()
        with open(image_path, "rb") as f:
            original = f.read()
        result["download_bytes"] = len(data)
        result["download_identical"] = data == original
        answer = f"image received intact ({len(data)} bytes)" if data == original else "image differs"
        peer.send_message(mto=browser_jid, mbody=answer, mtype="chat")
        # The answer leaves through slixmpp's send queue: a ping round trip after it means the
        # server has it before this client disconnects.
        await peer.plugin["xep_0199"].ping(jid=JID(peer_jid).domain, timeout=15)
    finally:
        disconnect(peer)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 150)
