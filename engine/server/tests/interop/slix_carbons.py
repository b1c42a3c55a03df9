#!/usr/bin/env python3
"""XEP-0280 Message Carbons with a real XMPP client library (slixmpp's xep_0280).

alice logs in twice (resources A and B), both enable carbons; bob logs in once. bob writes to
alice/A: A gets the message, B gets the received carbon (slixmpp's carbon_received, the
forwarded message from bob to alice/A). A answers bob: bob gets it, B gets the sent carbon
(carbon_sent, from alice/A to bob). alice's disco#info of the server must list the feature.
Prints one JSON object; exits 0 only if all happened.

Usage: slix_carbons.py HOST PORT ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


def first(future, value):
    if not future.done():
        future.set_result(value)


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    loop = asyncio.get_event_loop()
    plugins = ("xep_0030", "xep_0280")
    a = make_client(alice_jid + "/A", alice_pw, plugins)
    b = make_client(alice_jid + "/B", alice_pw, plugins)
    bob = make_client(bob_jid + "/phone", bob_pw, plugins)
    a_got, bob_got = loop.create_future(), loop.create_future()
    received, sent = loop.create_future(), loop.create_future()
    b_plain = []

    def with_body(future):
        def handler(msg):
            if msg["body"]:
                first(future, {"from": str(msg["from"]), "body": msg["body"]})
        return handler

    def carbon(future, key):
        def handler(msg):
            inner = msg[key]
            first(future, {"from": str(inner["from"]), "to": str(inner["to"]),
                           "body": inner["body"], "wrapper_from": str(msg["from"])})
        return handler

    a.add_event_handler("message", with_body(a_got))
    bob.add_event_handler("message", with_body(bob_got))
    b.add_event_handler("carbon_received", carbon(received, "carbon_received"))
    b.add_event_handler("carbon_sent", carbon(sent, "carbon_sent"))
    # B must never get the originals themselves, only copies.
    b.add_event_handler("message", lambda msg: msg["body"] and b_plain.append(msg["body"]))

    await online(host, port, a, b, bob)
    await a.plugin["xep_0280"].enable(timeout=TIMEOUT_S)
    await b.plugin["xep_0280"].enable(timeout=TIMEOUT_S)
    info = await a.plugin["xep_0030"].get_info(jid=a.boundjid.domain, timeout=TIMEOUT_S)
    result["carbons_advertised"] = "urn:xmpp:carbons:2" in info["disco_info"]["features"]

    bob.send_message(mto=a.boundjid.full, mbody="hello A", mtype="chat")
    result["a_got"] = await asyncio.wait_for(a_got, TIMEOUT_S)
    result["b_received_carbon"] = await asyncio.wait_for(received, TIMEOUT_S)

    a.send_message(mto=bob.boundjid.full, mbody="hi bob", mtype="chat")
    result["bob_got"] = await asyncio.wait_for(bob_got, TIMEOUT_S)
    result["b_sent_carbon"] = await asyncio.wait_for(sent, TIMEOUT_S)
    result["b_plain_messages"] = b_plain
    disconnect(a, b, bob)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 4 * TIMEOUT_S)
