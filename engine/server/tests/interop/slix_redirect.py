#!/usr/bin/env python3
"""Interop with a rookery cluster: slixmpp follows see-other-host.

dave's client connects to a node that is not dave's home: after SASL the node closes the
stream with see-other-host naming dave's home node, and slixmpp reconnects there by itself
and binds. (slixmpp 1.17's handler reconnects to the address it was first given when that
was passed to connect() explicitly, as here: it stores the new one where only DNS lookups
read it. The script's stream_error handler, run before slixmpp's, points the explicit
address at the other host, as an application passing addresses must.) alice (logged in on her own home node) and dave then chat across nodes. Prints
one JSON object with what happened; exits 0 only if everything did.

Usage: slix_redirect.py HOST WRONG_PORT ALICE_PORT ALICE ALICE_PASSWORD DAVE DAVE_PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, disconnect, main, make_client, online


async def run(host, wrong_port, alice_port, alice_jid, alice_pw, dave_jid, dave_pw):
    result = {}
    loop = asyncio.get_event_loop()
    alice = make_client(alice_jid, alice_pw)
    dave = make_client(dave_jid, dave_pw)
    redirects = []
    alice_got = loop.create_future()
    dave_got = loop.create_future()

    def on_stream_error(error):
        other = error["see_other_host"]
        redirects.append([error["condition"], other])
        if error["condition"] == "see-other-host" and other:
            other_host, _, other_port = other.rpartition(":")
            dave.custom_address = (other_host.strip("[]"), int(other_port))

    dave.add_event_handler("stream_error", on_stream_error)
    alice.add_event_handler(
        "message", lambda msg: alice_got.done() or alice_got.set_result(msg["body"])
    )
    dave.add_event_handler(
        "message", lambda msg: dave_got.done() or dave_got.set_result(msg["body"])
    )

    await online(host, alice_port, alice)
    await online(host, wrong_port, dave)
    result["redirects"] = redirects
    result["dave_bound"] = str(dave.boundjid)
    result["dave_address"] = "%s:%d" % dave.address

    dave.send_message(mto=alice_jid, mbody="dave made it", mtype="chat")
    result["alice_got"] = await asyncio.wait_for(alice_got, TIMEOUT_S)
    alice.send_message(mto=dave_jid, mbody="welcome home", mtype="chat")
    result["dave_got"] = await asyncio.wait_for(dave_got, TIMEOUT_S)
    disconnect(alice, dave)
    return result


if __name__ == "__main__":
    main(run, 7, __doc__, 3 * TIMEOUT_S)
