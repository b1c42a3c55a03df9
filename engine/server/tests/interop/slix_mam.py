#!/usr/bin/env python3
"""Message archive (XEP-0313) with slixmpp's xep_0313 against a running rookery.

alice (device "phone") and bob chat: five messages, alternating. bob's copies carry a
XEP-0359 stanza-id by his bare JID. Later alice logs in with a second device ("laptop") and
fetches the conversation with bob from her archive, two messages a page (RSM max=2). Then
alice says three things in ROOM; bob joins asking for the last two (XEP-0045 history) and
also reads the room's archive two a page. Prints one JSON object; exits 0 only if all
happened.

Usage: slix_mam.py HOST PORT ROOM ALICE ALICE_PW BOB BOB_PW
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online

PLUGINS = ("xep_0030", "xep_0045", "xep_0059", "xep_0203", "xep_0313", "xep_0359")


async def archive_bodies(client, jid, with_jid=None):
    """Every body in JID's archive (optionally with WITH_JID), fetched two a page."""
    mam = client.plugin["xep_0313"]
    bodies = []
    async for message in mam.iterate(jid=jid, with_jid=with_jid, rsm={"max": 2}):
        bodies.append(message["mam_result"]["forwarded"]["stanza"]["body"])
        if len(bodies) > 50:
            raise RuntimeError("the archive pages did not end")
    return bodies


async def run(host, port, room, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    loop = asyncio.get_event_loop()
    alice = make_client(alice_jid + "/phone", alice_pw, PLUGINS)
    bob = make_client(bob_jid + "/desk", bob_pw, PLUGINS)
    await online(host, port, alice, bob)

    lines = ["a1", "b1", "a2", "b2", "a3"]
    bob_got, alice_got, stanza_ids = [], [], []
    done = loop.create_future()

    def check_done():
        if len(bob_got) == 3 and len(alice_got) == 2 and not done.done():
            done.set_result(True)

    def on_bob(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            bob_got.append(msg["body"])
            stanza_ids.append(msg["stanza_id"]["by"])
            check_done()

    def on_alice(msg):
        if msg["type"] in ("chat", "normal") and msg["body"]:
            alice_got.append(msg["body"])
            check_done()

    bob.add_event_handler("message", on_bob)
    alice.add_event_handler("message", on_alice)
    for line in lines:
        sender, to = (alice, bob_jid) if line[0] == "a" else (bob, alice_jid)
        sender.send_message(mto=to, mbody=line, mtype="chat")
        await asyncio.sleep(0.05)  # keeps the two senders' lines in the order written
    await asyncio.wait_for(done, TIMEOUT_S)
    result["stanza_id_by"] = sorted(set(stanza_ids))

    laptop = make_client(alice_jid + "/laptop", alice_pw, PLUGINS)
    await online(host, port, laptop)
    result["laptop_archive"] = await asyncio.wait_for(
        archive_bodies(laptop, alice_jid, with_jid=bob_jid), TIMEOUT_S)

    muc = alice.plugin["xep_0045"]
    await asyncio.wait_for(muc.join_muc_wait(room, "alice", maxstanzas=0), TIMEOUT_S)
    reflections = loop.create_future()
    said = []

    def on_reflection(msg):
        if msg["body"].startswith("g"):
            said.append(msg["body"])
            if len(said) == 3 and not reflections.done():
                reflections.set_result(True)

    alice.add_event_handler("groupchat_message", on_reflection)
    for line in ["g1", "g2", "g3"]:
        alice.send_message(mto=room, mbody=line, mtype="groupchat")
    await asyncio.wait_for(reflections, TIMEOUT_S)

    _, _, _, history = await asyncio.wait_for(
        bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=2), TIMEOUT_S)
    result["join_history"] = [m["body"] for m in history]
    result["history_delayed"] = all(bool(m["delay"]["stamp"]) for m in history)
    result["room_archive"] = await asyncio.wait_for(archive_bodies(bob, room), TIMEOUT_S)
    disconnect(alice, bob, laptop)
    return result


if __name__ == "__main__":
    main(run, 7, __doc__, 8 * TIMEOUT_S)
