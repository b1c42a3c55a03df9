#!/usr/bin/env python3
"""Rosters and presence with a real XMPP client library (slixmpp) against a running rookery.

alice and bob log in and send initial presence. alice subscribes to bob; both clients use
slixmpp's default roster policy (auto_authorize: answer `subscribed`; auto_subscribe:
subscribe back), so the handshake ends with subscription 'both' on both sides, learnt from
roster pushes. bob then changes his status: alice must see it; bob disconnects: alice must
see him go unavailable. Last, alice asks her roster again from a second client (resource
"two") and must find bob with 'both'. Prints one JSON object; exits 0 only if all happened.

Usage: slix_presence.py HOST PORT ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online



async def until(predicate, what):
    """Polls `predicate` until it holds (slixmpp updates rosters from pushes in the background)."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + TIMEOUT_S
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    loop = asyncio.get_event_loop()
    alice = make_client(alice_jid, alice_pw)
    bob = make_client(bob_jid, bob_pw)
    status_seen = loop.create_future()
    offline_seen = loop.create_future()

    def alice_presence(pres):
        if pres["from"].bare != bob_jid:
            return
        if pres["type"] == "unavailable":
            offline_seen.done() or offline_seen.set_result(str(pres["from"]))
        elif pres["status"] == "lunch" and not status_seen.done():
            status_seen.set_result({"from": str(pres["from"]), "show": pres["show"]})

    alice.add_event_handler("presence", alice_presence)
    await online(host, port, alice, bob, roster=True)

    alice.send_presence_subscription(pto=bob_jid)
    await until(lambda: alice.client_roster[bob_jid]["subscription"] == "both", "alice's item for bob: both")
    await until(lambda: bob.client_roster[alice_jid]["subscription"] == "both", "bob's item for alice: both")
    result["alice_sees_bob"] = alice.client_roster[bob_jid]["subscription"]
    result["bob_sees_alice"] = bob.client_roster[alice_jid]["subscription"]

    bob.send_presence(pstatus="lunch", pshow="away")
    result["status_seen"] = await asyncio.wait_for(status_seen, TIMEOUT_S)
    bob.disconnect()
    result["unavailable_from"] = await asyncio.wait_for(offline_seen, TIMEOUT_S)

    second = make_client(alice_jid + "/two", alice_pw)
    roster_ready = loop.create_future()

    async def second_start(_):
        roster = await second.get_roster()
        items = roster["roster"]["items"]
        roster_ready.done() or roster_ready.set_result(
            {str(jid): item["subscription"] for jid, item in items.items()})

    second.add_event_handler("session_start", lambda e: asyncio.ensure_future(second_start(e)))
    second.connect(host, int(port))
    result["roster_from_second_session"] = await asyncio.wait_for(roster_ready, TIMEOUT_S)
    disconnect(alice, second)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 4 * TIMEOUT_S)
