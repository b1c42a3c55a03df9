#!/usr/bin/env python3
"""Groups (XEP-0045) with a real XMPP client library (slixmpp) against a running rookery.

alice creates and joins ROOM (slixmpp's join_muc_wait: self-presence, occupants, subject);
bob joins; carol joins (becoming a member), leaves and disconnects. alice sends a groupchat
message: bob gets it from ROOM/alice, alice gets her reflection. carol logs in again later and
must get it from her offline queue (Rookery's group model: members get every message), with
a delay stamp. bob leaves: alice sees him go. Prints one JSON object; exits 0 only if all
happened.

Usage: slix_groups.py HOST PORT ROOM ALICE ALICE_PW BOB BOB_PW CAROL CAROL_PW
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


def group_client(jid, password):
    return make_client(jid, password, ("xep_0045", "xep_0203"))


async def run(host, port, room, alice_jid, alice_pw, bob_jid, bob_pw, carol_jid, carol_pw):
    result = {}
    loop = asyncio.get_event_loop()
    alice = group_client(alice_jid, alice_pw)
    bob = group_client(bob_jid, bob_pw)
    await online(host, port, alice, bob)
    muc = alice.plugin["xep_0045"]
    await asyncio.wait_for(muc.join_muc_wait(room, "alice", maxstanzas=0), TIMEOUT_S)
    await asyncio.wait_for(bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0), TIMEOUT_S)

    carol = group_client(carol_jid, carol_pw)
    await online(host, port, carol)
    await asyncio.wait_for(carol.plugin["xep_0045"].join_muc_wait(room, "carol", maxstanzas=0), TIMEOUT_S)
    carol.plugin["xep_0045"].leave_muc(room, "carol")
    await asyncio.sleep(0.2)
    carol.disconnect()
    await asyncio.sleep(0.2)
    result["occupants_seen_by_alice"] = sorted(muc.get_roster(room))

    bob_got = loop.create_future()
    alice_reflection = loop.create_future()
    bob_left = loop.create_future()

    def on_bob_groupchat(msg):
        if msg["body"] == "hello group" and not bob_got.done():
            bob_got.set_result(str(msg["from"]))

    def on_alice_groupchat(msg):
        if msg["body"] == "hello group" and not alice_reflection.done():
            alice_reflection.set_result(str(msg["from"]))

    def on_alice_presence(pres):
        if pres["from"].resource == "bob" and pres["type"] == "unavailable":
            bob_left.done() or bob_left.set_result(True)

    bob.add_event_handler("groupchat_message", on_bob_groupchat)
    alice.add_event_handler("groupchat_message", on_alice_groupchat)
    alice.add_event_handler(f"muc::{room}::presence", on_alice_presence)
    alice.send_message(mto=room, mbody="hello group", mtype="groupchat")
    result["bob_got_from"] = await asyncio.wait_for(bob_got, TIMEOUT_S)
    result["alice_reflection_from"] = await asyncio.wait_for(alice_reflection, TIMEOUT_S)

    bob.plugin["xep_0045"].leave_muc(room, "bob")
    result["bob_left_seen"] = await asyncio.wait_for(bob_left, TIMEOUT_S)

    # carol comes back: the message waits in her offline queue, flushed at initial presence.
    carol = group_client(carol_jid, carol_pw)
    carol_got = loop.create_future()

    def on_carol_message(msg):
        if msg["body"] == "hello group" and not carol_got.done():
            carol_got.set_result({"from": str(msg["from"]), "type": msg["type"],
                                  "delayed": bool(msg["delay"]["stamp"])})

    carol.add_event_handler("message", on_carol_message)
    carol.add_event_handler("session_start", lambda _: carol.send_presence())
    carol.connect(host, int(port))
    result["carol_offline_delivery"] = await asyncio.wait_for(carol_got, TIMEOUT_S)
    disconnect(alice, bob, carol)
    return result


if __name__ == "__main__":
    main(run, 9, __doc__, 6 * TIMEOUT_S)
