#!/usr/bin/env python3
"""Interop check of `--auth file` accounts with a real XMPP client library (slixmpp).

alice logs in with the mechanism slixmpp picks itself (the strongest offered: SCRAM-SHA-256),
bob is limited to SCRAM-SHA-1; alice sends bob a chat message. Then a client with alice's
JID and a wrong password is refused. Prints one JSON object (the mechanisms each used, what
bob received, whether the wrong password was refused); exits 0 only if everything did.

Usage: slix_accounts.py HOST PORT ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio

import slixmpp

from slix_common import TIMEOUT_S, disconnect, main, online, wrong_password_refused


def client(jid, password, mechanism=None):
    """A client for the loopback test server (no TLS yet): SCRAM allowed in the clear (slixmpp
    refuses it by default), PLAIN still refused."""
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.enable_starttls = False
    xmpp.enable_direct_tls = False
    xmpp.enable_plaintext = True
    xmpp.plugin["feature_mechanisms"].unencrypted_scram = True
    if mechanism:
        xmpp.plugin["feature_mechanisms"].use_mech = mechanism
    return xmpp


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    alice = client(alice_jid, alice_pw)
    bob = client(bob_jid, bob_pw, "SCRAM-SHA-1")
    got = asyncio.get_event_loop().create_future()
    bob.add_event_handler(
        "message", lambda msg: got.done() or got.set_result(msg["body"]))
    await online(host, port, alice, bob)
    result["alice_mechanism"] = alice.plugin["feature_mechanisms"].mech.name
    result["bob_mechanism"] = bob.plugin["feature_mechanisms"].mech.name
    alice.send_message(mto=bob_jid, mbody="hello over SCRAM", mtype="chat")
    result["bob_received"] = await asyncio.wait_for(got, TIMEOUT_S)
    disconnect(alice, bob)
    result["wrong_password_refused"] = await wrong_password_refused(
        client, alice_jid, alice_pw, host, port)
    # Let the disconnects finish before the loop closes (no pending tasks at exit).
    await asyncio.sleep(0.2)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 4 * TIMEOUT_S)
