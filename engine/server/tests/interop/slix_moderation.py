#!/usr/bin/env python3
"""XEP-0045 moderation and XEP-0410 self-ping with a real XMPP client library (slixmpp's
xep_0045 and xep_0410) against a running rookery.

alice creates ROOM, bob and carol join. bob's self-ping says JOINED. carol changes her nick
(set_self_nick: 303 + 110) and alice sees carol's old occupant leave with 303 and the new nick.
alice (owner, moderator) kicks bob: bob sees 307 (and 110); his self-ping now fails
(not-acceptable: DISCONNECTED). bob joins again (a kicked member may). alice bans bob: he sees
301; his next join is refused with forbidden. Prints one JSON object; exits 0 only if all
happened.

Usage: slix_moderation.py HOST PORT ROOM ALICE ALICE_PW BOB BOB_PW CAROL CAROL_PW
"""
import asyncio

from slixmpp import JID
from slixmpp.exceptions import PresenceError

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


def group_client(jid, password):
    return make_client(jid, password, ("xep_0045", "xep_0199", "xep_0410"))


def settle(future, value):
    if not future.done():
        future.set_result(value)


async def scenario(result, host, port, room, alice_jid, alice_pw, bob_jid, bob_pw, carol_jid, carol_pw):
    loop = asyncio.get_event_loop()
    alice = group_client(alice_jid, alice_pw)
    bob = group_client(bob_jid, bob_pw)
    carol = group_client(carol_jid, carol_pw)
    await online(host, port, alice, bob, carol)
    muc = alice.plugin["xep_0045"]
    await asyncio.wait_for(muc.join_muc_wait(room, "alice", maxstanzas=0), TIMEOUT_S)
    await asyncio.wait_for(bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0), TIMEOUT_S)
    await asyncio.wait_for(carol.plugin["xep_0045"].join_muc_wait(room, "carol", maxstanzas=0), TIMEOUT_S)

    ping = await bob.plugin["xep_0410"].send_self_ping(JID(f"{room}/bob"), timeout=TIMEOUT_S)
    result["self_ping_joined"] = ping.name

    renamed = loop.create_future()

    def on_alice_presence(pres):
        codes = pres["muc"]["status_codes"]
        if pres["from"].resource == "carol" and 303 in codes:
            settle(renamed, pres["muc"]["item_nick"])

    alice.add_event_handler(f"muc::{room}::presence", on_alice_presence)
    new_nick = await carol.plugin["xep_0045"].set_self_nick(JID(room), "caroline", timeout=TIMEOUT_S)
    result["carol_new_nick"] = new_nick
    result["alice_saw_rename_to"] = await asyncio.wait_for(renamed, TIMEOUT_S)

    bob_codes = []
    kicked, banned = loop.create_future(), loop.create_future()

    def on_bob_presence(pres):
        if pres["type"] != "unavailable" or pres["from"].resource != "bob":
            return
        codes = sorted(pres["muc"]["status_codes"])
        bob_codes.append(codes)
        if 307 in codes:
            settle(kicked, codes)
        if 301 in codes:
            settle(banned, codes)

    bob.add_event_handler(f"muc::{room}::presence", on_bob_presence)
    await muc.set_role(room, "bob", "none", timeout=TIMEOUT_S)
    result["kick_codes"] = await asyncio.wait_for(kicked, TIMEOUT_S)
    ping = await bob.plugin["xep_0410"].send_self_ping(JID(f"{room}/bob"), timeout=TIMEOUT_S)
    result["self_ping_after_kick"] = ping.name

    await asyncio.wait_for(bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0), TIMEOUT_S)
    result["rejoined_after_kick"] = True
    await muc.set_affiliation(room, "outcast", jid=JID(bob_jid).bare, timeout=TIMEOUT_S)
    result["ban_codes"] = await asyncio.wait_for(banned, TIMEOUT_S)

    try:
        await asyncio.wait_for(
            bob.plugin["xep_0045"].join_muc_wait(room, "bob", maxstanzas=0), TIMEOUT_S)
        result["rejoin_after_ban"] = "joined"
    except PresenceError as err:
        result["rejoin_after_ban"] = err.presence["error"]["condition"]
    outcasts = await muc.get_affiliation_list(room, "outcast", timeout=TIMEOUT_S)
    result["outcasts"] = sorted(str(j) for j in outcasts)
    disconnect(alice, bob, carol)


async def run(*args):
    """The scenario; a failure names the last result it had reached."""
    result = {}
    try:
        await scenario(result, *args)
    except BaseException as err:
        raise RuntimeError(f"after {list(result)}: {type(err).__name__}: {err}") from err
    return result


if __name__ == "__main__":
    main(run, 9, __doc__, 8 * TIMEOUT_S)
