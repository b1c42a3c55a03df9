#!/usr/bin/env python3
"""Interop check of TLS with a real XMPP client library (slixmpp), trusting a test CA.

alice logs in over STARTTLS with the mechanism slixmpp picks itself (SCRAM-SHA-256: its
-PLUS needs tls-unique, which TLS 1.3 does not have), bob over direct TLS (XEP-0368) limited
to SCRAM-SHA-1, carol over STARTTLS with PLAIN; alice sends bob a chat message. Then: a
client that will not do TLS is refused (the server requires TLS, so it offers no SASL
mechanism in the clear), and a client that trusts another CA refuses the server's
certificate. Prints one JSON object; exits 0 only if every step ran.

Usage: slix_tls.py HOST PORT TLS_PORT CA_PEM OTHER_CA_PEM ALICE ALICE_PW BOB BOB_PW CAROL CAROL_PW
"""
import asyncio

import slixmpp

from slix_common import TIMEOUT_S, main


def client(jid, password, ca, direct=False, mechanism=None):
    """A client that trusts only `ca` and uses STARTTLS, or direct TLS when `direct`."""
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ca_certs = ca
    xmpp.enable_starttls = not direct
    xmpp.enable_direct_tls = direct
    xmpp.enable_plaintext = False
    if mechanism:
        xmpp.plugin["feature_mechanisms"].use_mech = mechanism
    return xmpp


async def session_or_failure(xmpp, host, port, events=("failed_auth", "ssl_invalid_chain",
                                                       "connection_failed", "disconnected")):
    """Connects; returns "session" once the session starts, else the first failure event."""
    outcome = asyncio.get_event_loop().create_future()

    def settle(value):
        if not outcome.done():
            outcome.set_result(value)

    xmpp.add_event_handler("session_start", lambda _: settle("session"))
    for event in events:
        xmpp.add_event_handler(event, lambda _, e=event: settle(e))
    xmpp.connect(host, int(port))
    return await asyncio.wait_for(outcome, TIMEOUT_S)


def tls_version(xmpp):
    ssl_object = xmpp.transport.get_extra_info("ssl_object") if xmpp.transport else None
    return ssl_object.version() if ssl_object else None


async def run(host, port, tls_port, ca, other_ca, alice_jid, alice_pw, bob_jid, bob_pw,
              carol_jid, carol_pw):
    result = {}
    alice = client(alice_jid, alice_pw, ca)
    bob = client(bob_jid, bob_pw, ca, direct=True, mechanism="SCRAM-SHA-1")
    carol = client(carol_jid, carol_pw, ca, mechanism="PLAIN")
    got = asyncio.get_event_loop().create_future()
    bob.add_event_handler("message", lambda msg: got.done() or got.set_result(msg["body"]))
    for name, xmpp, at in (("alice", alice, port), ("bob", bob, tls_port),
                           ("carol", carol, port)):
        result[f"{name}_outcome"] = await session_or_failure(xmpp, host, at)
        result[f"{name}_mechanism"] = xmpp.plugin["feature_mechanisms"].mech.name
        result[f"{name}_tls"] = tls_version(xmpp)
        xmpp.send_presence()
    alice.send_message(mto=bob_jid, mbody="hello over TLS", mtype="chat")
    result["bob_received"] = await asyncio.wait_for(got, TIMEOUT_S)
    for xmpp in (alice, bob, carol):
        xmpp.disconnect()

    # No TLS at all: nothing to authenticate with is offered in the clear.
    clear = slixmpp.ClientXMPP(alice_jid, alice_pw)
    clear.enable_starttls = False
    clear.enable_direct_tls = False
    clear.enable_plaintext = True
    clear.plugin["feature_mechanisms"].unencrypted_plain = True
    clear.plugin["feature_mechanisms"].unencrypted_scram = True
    clear_features = asyncio.get_event_loop().create_future()
    clear.add_event_handler(
        "stream_negotiated", lambda _: clear_features.done() or clear_features.set_result(True))
    try:
        result["clear_outcome"] = await session_or_failure(
            clear, host, port, events=("failed_auth", "no_auth", "disconnected"))
    except asyncio.TimeoutError:
        result["clear_outcome"] = "timeout"
    clear.disconnect()

    # A client trusting another CA rejects the server's certificate.
    stranger = client(alice_jid, alice_pw, other_ca)
    try:
        result["stranger_outcome"] = await session_or_failure(stranger, host, port)
    except asyncio.TimeoutError:
        result["stranger_outcome"] = "timeout"
    stranger.disconnect()
    await asyncio.sleep(0.2)
    return result


if __name__ == "__main__":
    main(run, 11, __doc__, 8 * TIMEOUT_S)
