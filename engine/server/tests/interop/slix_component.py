#!/usr/bin/env python3
"""XEP-0114: a slixmpp ComponentXMPP connects to the component port with its secret, a user
(slixmpp ClientXMPP) asks it for disco#info and chats with an address at its domain, and the
component answers both; a component with a wrong secret is refused with a stream error.

Usage: slix_component.py HOST PORT COMPONENT_PORT NAME SECRET JID PASSWORD
"""
import asyncio

import slixmpp

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


def make_component(name, secret, host, port):
    component = slixmpp.ComponentXMPP(name, secret, host, int(port))
    component.register_plugin("xep_0030")
    return component


async def component_online(component):
    ready = asyncio.Event()
    component.add_event_handler("session_start", lambda _: ready.set())
    component.connect()
    await asyncio.wait_for(ready.wait(), TIMEOUT_S)


async def wrong_secret_refused(name, secret, host, port):
    """The stream error condition a component with a wrong secret gets (None: none came)."""
    mallory = make_component(name, "wrong-" + secret, host, port)
    error = asyncio.get_event_loop().create_future()

    def on_error(stanza):
        if not error.done():
            error.set_result(stanza["condition"])

    mallory.add_event_handler("stream_error", on_error)
    mallory.add_event_handler("session_start", lambda _: error.done() or error.set_result("accepted"))
    mallory.connect()
    try:
        return await asyncio.wait_for(error, TIMEOUT_S)
    finally:
        mallory.disconnect()


async def run(host, port, component_port, name, secret, jid, password):
    component = make_component(name, secret, host, component_port)
    component["xep_0030"].add_identity(category="pubsub", itype="push", name="Test push")
    heard = asyncio.get_event_loop().create_future()

    def on_component_message(msg):
        if msg["body"] and not heard.done():
            heard.set_result({"to": str(msg["to"]), "from": str(msg["from"]), "body": msg["body"]})
            reply = component.make_message(
                mto=msg["from"], mfrom=msg["to"], mbody="pong: " + msg["body"], mtype="chat"
            )
            reply.send()

    component.add_event_handler("message", on_component_message)
    await component_online(component)

    alice = make_client(jid, password, plugins=["xep_0030"])
    answer = asyncio.get_event_loop().create_future()

    def on_alice_message(msg):
        if msg["body"] and not answer.done():
            answer.set_result({"from": str(msg["from"]), "body": msg["body"]})

    alice.add_event_handler("message", on_alice_message)
    await online(host, port, alice)
    info = await alice["xep_0030"].get_info(jid=name, timeout=TIMEOUT_S)
    identities = [list(i) for i in info["disco_info"]["identities"]]
    alice.send_message(mto="bot@" + name, mbody="ping", mtype="chat")
    got = await asyncio.wait_for(heard, TIMEOUT_S)
    back = await asyncio.wait_for(answer, TIMEOUT_S)
    refused = await wrong_secret_refused(name, secret, host, component_port)
    disconnect(alice, component)
    await asyncio.sleep(0.2)
    return {
        "identities": identities,
        "component_got": got,
        "alice_got": back,
        "wrong_secret": refused,
    }


if __name__ == "__main__":
    main(run, 7, __doc__, 6 * TIMEOUT_S)
