#!/usr/bin/env python3
"""Interop check of XEP-0077 in-band registration (`--allow-registration`) with slixmpp's
xep_0077 plugin.

A client for a new JID asks for the registration form before logging in, registers with its
password, then authenticates on the same stream (slixmpp's account-creation flow). A second
client then logs in to that account with the password, and a third one trying to register
the same name again is refused with `conflict`. Prints one JSON object; exits 0 only if all
of it happened.

Usage: slix_register.py HOST PORT JID PASSWORD
"""
import asyncio

from slix_common import TIMEOUT_S, main, make_client
from slixmpp.exceptions import IqError


def registering(jid, password, outcome):
    xmpp = make_client(jid, password, ["xep_0077"])
    xmpp["xep_0077"].force_registration = True

    async def register(form):
        fields = [f for f in ("username", "password") if form["register"][f] == ""]
        iq = xmpp.Iq()
        iq["type"] = "set"
        iq["register"]["username"] = xmpp.boundjid.user
        iq["register"]["password"] = password
        try:
            await iq.send(timeout=TIMEOUT_S)
            outcome.setdefault("fields", fields)
            outcome["registered"] = True
        except IqError as err:
            outcome["error"] = err.iq["error"]["condition"]
            outcome["done"].set()
            xmpp.disconnect()

    xmpp.add_event_handler("register", register)
    return xmpp


async def run(host, port, jid, password):
    result = {}
    first = {"done": asyncio.Event()}
    xmpp = registering(jid, password, first)
    xmpp.add_event_handler("session_start", lambda _: first["done"].set())
    xmpp.connect(host, int(port))
    await asyncio.wait_for(first["done"].wait(), TIMEOUT_S)
    result["registered"] = first.get("registered", False)
    result["form_fields"] = first.get("fields", [])
    result["logged_in_after_registering"] = xmpp.authenticated
    xmpp.disconnect()

    again = make_client(jid, password)
    online = asyncio.Event()
    again.add_event_handler("session_start", lambda _: online.set())
    again.connect(host, int(port))
    await asyncio.wait_for(online.wait(), TIMEOUT_S)
    result["logged_in_again"] = True
    again.disconnect()

    second = {"done": asyncio.Event()}
    dup = registering(jid, "another password", second)
    dup.connect(host, int(port))
    await asyncio.wait_for(second["done"].wait(), TIMEOUT_S)
    result["second_registration"] = second.get("error", "accepted")
    await asyncio.sleep(0.2)
    return result


if __name__ == "__main__":
    main(run, 4, __doc__, 4 * TIMEOUT_S)
