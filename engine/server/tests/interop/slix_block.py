#!/usr/bin/env python3
"""XEP-0191 blocking with a real XMPP client library (slixmpp's xep_0191) against a running
rookery.

alice reads her (empty) blocklist, blocks bob and gets the push; bob's chat to alice comes
back as an error (service-unavailable) and never reaches her; alice's chat to bob is refused
with not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/> and never reaches him;
alice unblocks bob: his next message reaches her and hers reaches him (each side then lists
every body it got, so a blocked one delivered earlier on the same path would show). Prints
one JSON object; exits 0 only if all happened.

Usage: slix_block.py HOST PORT ALICE ALICE_PW BOB BOB_PW
"""
import asyncio

from slixmpp import JID

from slix_common import TIMEOUT_S, disconnect, main, make_client, online

BLOCKING_ERRORS = "{urn:xmpp:blocking:errors}blocked"


def settle(future, value):
    if not future.done():
        future.set_result(value)


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    loop = asyncio.get_event_loop()
    alice = make_client(alice_jid, alice_pw, ("xep_0191",))
    bob = make_client(bob_jid, bob_pw, ("xep_0191",))
    await online(host, port, alice, bob)
    alice_bare, bob_bare = JID(alice_jid).bare, JID(bob_jid).bare
    blocking = alice.plugin["xep_0191"]
    before = await blocking.get_blocked_jids(timeout=TIMEOUT_S)
    result["blocklist_before"] = sorted(str(j) for j in before)

    pushed = loop.create_future()
    alice.add_event_handler("blocked", lambda iq: settle(
        pushed, [i.get("jid") for i in iq.xml.iter("{urn:xmpp:blocking}item")]))
    await blocking.block(JID(bob_bare), timeout=TIMEOUT_S)
    result["pushed"] = await asyncio.wait_for(pushed, TIMEOUT_S)
    after = await blocking.get_blocked_jids(timeout=TIMEOUT_S)
    result["blocklist_after"] = sorted(str(j) for j in after)

    alice_bodies, bob_bodies = [], []
    alice_last, bob_last = loop.create_future(), loop.create_future()

    def on_alice_message(msg):
        if msg["type"] in ("chat", "normal"):
            alice_bodies.append(str(msg["body"]))
            if msg["body"] == "after unblock":
                settle(alice_last, True)

    def on_bob_message(msg):
        if msg["type"] in ("chat", "normal"):
            bob_bodies.append(str(msg["body"]))
            if msg["body"] == "hello again":
                settle(bob_last, True)

    alice.add_event_handler("message", on_alice_message)
    bob.add_event_handler("message", on_bob_message)
    bob_error, alice_error = loop.create_future(), loop.create_future()
    bob.add_event_handler("message_error", lambda m: settle(bob_error, m["error"]["condition"]))
    alice.add_event_handler("message_error", lambda m: settle(alice_error, {
        "condition": m["error"]["condition"],
        "blocked": m.xml.find(".//" + BLOCKING_ERRORS) is not None,
    }))

    bob.send_message(mto=alice_bare, mbody="while blocked", mtype="chat")
    result["bob_error"] = await asyncio.wait_for(bob_error, TIMEOUT_S)
    alice.send_message(mto=bob_bare, mbody="to blocked", mtype="chat")
    result["alice_error"] = await asyncio.wait_for(alice_error, TIMEOUT_S)

    unpushed = loop.create_future()
    alice.add_event_handler("unblocked", lambda iq: settle(unpushed, True))
    await blocking.unblock(JID(bob_bare), timeout=TIMEOUT_S)
    result["unblock_pushed"] = await asyncio.wait_for(unpushed, TIMEOUT_S)
    bob.send_message(mto=alice_bare, mbody="after unblock", mtype="chat")
    await asyncio.wait_for(alice_last, TIMEOUT_S)
    alice.send_message(mto=bob_bare, mbody="hello again", mtype="chat")
    await asyncio.wait_for(bob_last, TIMEOUT_S)
    result["alice_bodies"] = alice_bodies
    result["bob_bodies"] = bob_bodies
    disconnect(alice, bob)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 4 * TIMEOUT_S)
