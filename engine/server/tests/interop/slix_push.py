#!/usr/bin/env python3
"""XEP-0357 push with an app server written as a slixmpp ComponentXMPP (XEP-0114): alice
(slixmpp with xep_0198 resumption) enables push to the component, then her TCP connection is
cut without a word (her session waits, detached); bob's message to her makes the server
publish the summary to the component. Then carol enables push and logs out (offline): bob's
message to her is pushed too. The component answers every publish with a result.

Usage: slix_push.py HOST PORT COMPONENT_PORT NAME SECRET JID_A PASS_A JID_B PASS_B JID_C PASS_C
"""
import asyncio
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from slix_common import TIMEOUT_S, disconnect, main, make_client, online

PUSH_NS = "urn:xmpp:push:0"
PUBSUB_NS = "http://jabber.org/protocol/pubsub"
DATA_NS = "jabber:x:data"
# Bob resends while the server has not yet seen alice's connection die: at most this often.
TRIES = 20
TRY_EVERY_S = 0.5


def summary_of(iq):
    """The node and the summary form's fields of a notification publish."""
    publish = iq.xml.find(f"{{{PUBSUB_NS}}}pubsub/{{{PUBSUB_NS}}}publish")
    form = publish.find(f"{{{PUBSUB_NS}}}item/{{{PUSH_NS}}}notification/{{{DATA_NS}}}x")
    fields = {}
    for field in form.findall(f"{{{DATA_NS}}}field"):
        value = field.find(f"{{{DATA_NS}}}value")
        fields[field.get("var")] = value.text if value is not None else None
    options = iq.xml.find(f"{{{PUBSUB_NS}}}pubsub/{{{PUBSUB_NS}}}publish-options")
    return {
        "to": str(iq["to"]),
        "from": str(iq["from"]),
        "node": publish.get("node"),
        "fields": fields,
        "has_publish_options": options is not None,
    }


async def enable_push(client, app, node):
    iq = client.make_iq_set()
    enable = ET.Element(f"{{{PUSH_NS}}}enable", jid=app, node=node)
    form = ET.SubElement(enable, f"{{{DATA_NS}}}x", type="submit")
    for var, value in [
        ("FORM_TYPE", "http://jabber.org/protocol/pubsub#publish-options"),
        ("secret", "app-token"),
    ]:
        field = ET.SubElement(form, f"{{{DATA_NS}}}field", var=var)
        ET.SubElement(field, f"{{{DATA_NS}}}value").text = value
    iq.append(enable)
    await iq.send(timeout=TIMEOUT_S)


async def account_features(client):
    info = await client["xep_0030"].get_info(jid=client.boundjid.bare, timeout=TIMEOUT_S)
    return info["disco_info"]["features"]


async def pushed_after(bob, to, pushes, node):
    """Bob sends to `to` until a publish for `node` arrives (bounded); returns its summary."""
    for n in range(TRIES):
        bob.send_message(mto=to, mbody=f"wake up {n}", mtype="chat")
        try:
            return await asyncio.wait_for(asyncio.shield(pushes[node]), TRY_EVERY_S)
        except asyncio.TimeoutError:
            continue
    raise TimeoutError(f"no push for {node} after {TRIES} messages")


async def run(host, port, component_port, name, secret, jid_a, pass_a, jid_b, pass_b, jid_c, pass_c):
    loop = asyncio.get_event_loop()
    pushes = {"alice-node": loop.create_future(), "carol-node": loop.create_future()}
    app = slixmpp.ComponentXMPP(name, secret, host, int(component_port))
    app.register_plugin("xep_0060")

    def on_publish(iq):
        summary = summary_of(iq)
        future = pushes.get(summary["node"])
        if future is not None and not future.done():
            future.set_result(summary)
        iq.reply().send()

    app.register_handler(Callback("push", StanzaPath("iq@type=set/pubsub/publish"), on_publish))
    ready = asyncio.Event()
    app.add_event_handler("session_start", lambda _: ready.set())
    app.connect()
    await asyncio.wait_for(ready.wait(), TIMEOUT_S)

    alice = make_client(jid_a, pass_a, plugins=["xep_0030", "xep_0198"])
    sm_enabled = asyncio.Event()
    alice.add_event_handler("sm_enabled", lambda _: sm_enabled.set())
    bob = make_client(jid_b, pass_b)
    carol = make_client(jid_c, pass_c)
    await online(host, port, alice, bob, carol)
    await asyncio.wait_for(sm_enabled.wait(), TIMEOUT_S)
    features = await account_features(alice)
    await enable_push(alice, name, "alice-node")
    await enable_push(carol, name, "carol-node")

    # Detached: the TCP connection is cut, no </stream:stream>.
    alice.abort()
    detached = await pushed_after(bob, alice.boundjid.bare, pushes, "alice-node")

    # Offline: carol logs out.
    carol.disconnect()
    await asyncio.wait_for(carol.disconnected, TIMEOUT_S)
    offline = await pushed_after(bob, carol.boundjid.bare, pushes, "carol-node")
    disconnect(bob, app)
    await asyncio.sleep(0.2)
    return {"account_has_push": PUSH_NS in features, "detached": detached, "offline": offline}


if __name__ == "__main__":
    main(run, 11, __doc__, 8 * TIMEOUT_S)
