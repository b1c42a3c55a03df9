#!/usr/bin/env python3
"""The other end of a chat with a real end-user client (the profanity test): a slixmpp user
that logs in over STARTTLS trusting a test CA, prints "ready" once online, answers the first
chat message with "echo: <body>", and prints one JSON object with what it received.

Usage: slix_echo.py HOST PORT CA_PEM JID PASSWORD
"""
import asyncio
import sys

import slixmpp

from slix_common import TIMEOUT_S, main

# How long the user waits for the first message (the other client is driven by keystrokes).
WAIT_S = 4 * TIMEOUT_S


async def run(host, port, ca, jid, password):
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ca_certs = ca
    xmpp.enable_starttls = True
    xmpp.enable_direct_tls = False
    xmpp.enable_plaintext = False
    online = asyncio.Event()
    got = asyncio.get_event_loop().create_future()

    def on_message(msg):
        if msg["type"] in ("chat", "normal") and msg["body"] and not got.done():
            got.set_result((str(msg["from"]), msg["body"]))
            msg.reply(f"echo: {msg['body']}").send()

    xmpp.add_event_handler("session_start", lambda _: (xmpp.send_presence(), online.set()))
    xmpp.add_event_handler("message", on_message)
    xmpp.connect(host, int(port))
    await asyncio.wait_for(online.wait(), TIMEOUT_S)
    print("ready", flush=True)
    sender, body = await asyncio.wait_for(got, WAIT_S)
    await asyncio.sleep(1.0)  # the echo leaves before the disconnect
    xmpp.disconnect()
    await asyncio.sleep(0.2)
    return {"from": sender, "body": body}


if __name__ == "__main__":
    main(run, 5, __doc__, WAIT_S + 2 * TIMEOUT_S)
