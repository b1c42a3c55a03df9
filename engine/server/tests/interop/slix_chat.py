#!/usr/bin/env python3
"""Interop check with a real XMPP client library (slixmpp) against a running rookery.

Two clients log in with SASL PLAIN; alice sends bob a chat message carrying an XEP-0184
receipt request; bob's client answers with a receipt (slixmpp's xep_0184 auto_ack); alice
waits for the receipt. alice also pings the server (XEP-0199), asks disco#info and gets her
roster. Prints one JSON object with what happened; exits 0 only if everything did.

Usage: slix_chat.py HOST PORT DOMAIN ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online, wrong_password_refused


def chat_client(jid, password):
    client = make_client(jid, password, ("xep_0030", "xep_0199", "xep_0184"))
    client.plugin["xep_0184"].auto_ack = True
    client.plugin["xep_0184"].auto_request = False
    return client


async def run(host, port, domain, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {"alice_online": False, "bob_online": False}
    alice = chat_client(alice_jid, alice_pw)
    bob = chat_client(bob_jid, bob_pw)
    bob_got = asyncio.get_event_loop().create_future()
    receipt = asyncio.get_event_loop().create_future()

    def bob_message(msg):
        if msg["type"] in ("chat", "normal") and not bob_got.done():
            bob_got.set_result({"body": msg["body"], "from": str(msg["from"]),
                                "requests_receipt": msg["request_receipt"]})

    bob.add_event_handler("message", bob_message)
    alice.add_event_handler("receipt_received",
                            lambda msg: receipt.done() or receipt.set_result(msg["receipt"]))

    await online(host, port, alice, bob, roster=True)
    result["alice_online"] = True
    result["bob_online"] = True
    result["alice_bound"] = str(alice.boundjid)
    result["roster_items"] = len(alice.client_roster.keys()) - (1 if alice.boundjid.bare in alice.client_roster else 0)

    msg = alice.make_message(mto=bob_jid, mbody="hello bob", mtype="chat")
    msg["id"] = "m1"
    msg["request_receipt"] = True
    msg.send()
    got = await asyncio.wait_for(bob_got, TIMEOUT_S)
    result["bob_received"] = got
    result["receipt_for"] = await asyncio.wait_for(receipt, TIMEOUT_S)

    rtt = await alice.plugin["xep_0199"].ping(jid=domain, timeout=TIMEOUT_S)
    result["ping_ok"] = rtt is not None
    info = await alice.plugin["xep_0030"].get_info(jid=domain, timeout=TIMEOUT_S)
    result["disco_features"] = sorted(info["disco_info"]["features"])
    result["disco_identities"] = [list(i) for i in info["disco_info"]["identities"]]

    disconnect(alice, bob)
    result["wrong_password_refused"] = await wrong_password_refused(
        chat_client, alice_jid, alice_pw, host, port)
    return result


if __name__ == "__main__":
    main(run, 7, __doc__, 4 * TIMEOUT_S)
