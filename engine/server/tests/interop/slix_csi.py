#!/usr/bin/env python3
"""XEP-0352 Client State Indication with a real XMPP client library (slixmpp's xep_0352).

alice and bob subscribe to each other. alice's client (which saw the csi stream feature)
says <inactive/>. bob changes his presence twice ("one", "two") then writes a chat: the chat
arrives at once, preceded only by the latest presence ("two"; "one" was coalesced away: urgent
stanzas flush what was held, in order). bob changes presence twice more ("three", "four") and
pings the server (so both are held by then); alice says <active/>: only "four" arrives, then
alice's ping round trip shows nothing else came. Prints one JSON object (`log` is what alice
saw from bob, in order); exits 0 only if all happened.

Usage: slix_csi.py HOST PORT ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


async def until(predicate, what):
    """Polls `predicate` (slixmpp handles stanzas in the background), bounded by TIMEOUT_S."""
    loop = asyncio.get_event_loop()
    deadline = loop.time() + TIMEOUT_S
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    alice = make_client(alice_jid, alice_pw, ("xep_0030", "xep_0199", "xep_0352"))
    bob = make_client(bob_jid, bob_pw, ("xep_0030", "xep_0199"))
    log = []

    def alice_presence(pres):
        # slixmpp reports an available presence's type as its show, if any.
        available = pres["type"] in ("available", "away", "chat", "dnd", "xa")
        if pres["from"].bare == bob_jid and available and pres["status"]:
            log.append("presence " + pres["status"])

    def alice_message(msg):
        if msg["from"].bare == bob_jid and msg["body"]:
            log.append("chat " + msg["body"])

    alice.add_event_handler("presence", alice_presence)
    alice.add_event_handler("message", alice_message)
    await online(host, port, alice, bob, roster=True)
    alice.send_presence_subscription(pto=bob_jid)
    await until(lambda: alice.client_roster[bob_jid]["subscription"] == "both", "subscription both")
    await until(lambda: bob.client_roster[alice_jid]["subscription"] == "both", "bob's item both")
    domain = alice.boundjid.domain
    bob.send_presence(pstatus="zero")
    await until(lambda: "presence zero" in log, "bob's presence while active")
    log.clear()

    result["csi_feature_seen"] = alice.plugin["xep_0352"].enabled
    alice.plugin["xep_0352"].send_inactive()
    # The ping's answer comes after the server took <inactive/> (one stream, in order).
    await alice.plugin["xep_0199"].ping(jid=domain, timeout=TIMEOUT_S)
    bob.send_presence(pstatus="one", pshow="away")
    bob.send_presence(pstatus="two", pshow="dnd")
    bob.send_message(mto=alice.boundjid.full, mbody="wake", mtype="chat")
    await until(lambda: "chat wake" in log, "the chat")
    result["log_at_chat"] = list(log)
    log.clear()

    bob.send_presence(pstatus="three", pshow="xa")
    bob.send_presence(pstatus="four", pshow="chat")
    await bob.plugin["xep_0199"].ping(jid=domain, timeout=TIMEOUT_S)
    result["log_while_inactive"] = list(log)
    alice.plugin["xep_0352"].send_active()
    await until(lambda: "presence four" in log, "the held presence")
    await alice.plugin["xep_0199"].ping(jid=domain, timeout=TIMEOUT_S)
    result["log_after_active"] = list(log)
    disconnect(alice, bob)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 6 * TIMEOUT_S)
