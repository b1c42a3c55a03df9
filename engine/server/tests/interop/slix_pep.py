#!/usr/bin/env python3
"""What the server keeps for an account, with slixmpp's own plugins, against a running rookery.

alice and bob subscribe to each other. alice publishes a XEP-0172 nickname and an OMEMO-style
device list (open access, via publish-options) and bundle with random base64 bytes; bob must
get the nickname and device list as PEP events, then fetch alice's device list and bundle
from her bare JID and find them identical (compared after C14N, since slixmpp re-serialises;
the router tests check the bytes). alice sets a XEP-0054 vCard and bob reads it; alice
stores and reads back XEP-0049 private XML; alice keeps two XEP-0402 bookmarks in a
whitelist node that bob may not read; bob asks alice's XEP-0012 last activity (0: online)
and alice disco#info shows the PEP identity. Prints one JSON object; exits 0 only if all
happened.

Usage: slix_pep.py HOST PORT ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio
import base64
import os
from xml.etree import ElementTree as ET

from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0402.stanza import Conference
from slixmpp.xmlstream import ElementBase, register_stanza_plugin

from slix_common import TIMEOUT_S, disconnect, main, make_client, online

PLUGINS = ("xep_0004", "xep_0030", "xep_0060", "xep_0163", "xep_0172", "xep_0054",
           "xep_0049", "xep_0402", "xep_0012")
AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = AXOLOTL + ".devicelist"


class Notes(ElementBase):
    name = "storage"
    namespace = "storage:rosternotes"
    plugin_attrib = "notes"
    interfaces = {"note"}
    sub_interfaces = {"note"}


async def until(predicate, what):
    loop = asyncio.get_event_loop()
    deadline = loop.time() + TIMEOUT_S
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def c14n(element):
    return ET.canonicalize(ET.tostring(element, encoding="unicode"))


def b64(size):
    return base64.b64encode(os.urandom(size)).decode()


def options(client, **fields):
    form = client["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields.items():
        form.add_field(var="pubsub#" + var, value=value)
    return form


async def run(host, port, alice_jid, alice_pw, bob_jid, bob_pw):
    result = {}
    alice = make_client(alice_jid, alice_pw, PLUGINS)
    bob = make_client(bob_jid, bob_pw, PLUGINS)
    events = {}

    def on_event(msg):
        items = msg["pubsub_event"]["items"]
        payload = items["item"]["payload"]
        if payload is not None:
            events.setdefault(items["node"], []).append(payload)

    bob.add_event_handler("pubsub_publish", on_event)
    await online(host, port, alice, bob, roster=True)
    alice.send_presence_subscription(pto=bob_jid)
    await until(lambda: alice.client_roster[bob_jid]["subscription"] == "both", "alice: both")
    await until(lambda: bob.client_roster[alice_jid]["subscription"] == "both", "bob: both")

    await alice["xep_0172"].publish_nick("Alice in PEP")
    device_id = str(int.from_bytes(os.urandom(3), "big"))
    devicelist = ET.Element(f"{{{AXOLOTL}}}list")
    ET.SubElement(devicelist, f"{{{AXOLOTL}}}device", id=device_id)
    await alice["xep_0060"].publish(None, DEVICELIST, id="current", payload=devicelist,
                                    options=options(alice, access_model="open"))
    bundle = ET.Element(f"{{{AXOLOTL}}}bundle")
    spk = ET.SubElement(bundle, f"{{{AXOLOTL}}}signedPreKeyPublic", signedPreKeyId="1")
    spk.text = b64(33)
    ET.SubElement(bundle, f"{{{AXOLOTL}}}signedPreKeySignature").text = b64(64)
    ET.SubElement(bundle, f"{{{AXOLOTL}}}identityKey").text = b64(33)
    prekeys = ET.SubElement(bundle, f"{{{AXOLOTL}}}prekeys")
    for n in range(1, 21):
        ET.SubElement(prekeys, f"{{{AXOLOTL}}}preKeyPublic", preKeyId=str(n)).text = b64(33)
    bundle_node = f"{AXOLOTL}.bundles:{device_id}"
    await alice["xep_0060"].publish(None, bundle_node, id="current", payload=bundle,
                                    options=options(alice, access_model="open"))

    nick_ns = "http://jabber.org/protocol/nick"
    await until(lambda: nick_ns in events and DEVICELIST in events and bundle_node in events,
                "bob's PEP events")
    result["nick_event"] = events[nick_ns][-1].text
    result["devicelist_event_identical"] = c14n(events[DEVICELIST][-1]) == c14n(devicelist)
    for node, sent, key in [(DEVICELIST, devicelist, "devicelist"), (bundle_node, bundle, "bundle")]:
        iq = await bob["xep_0060"].get_items(alice_jid, node, timeout=TIMEOUT_S)
        payloads = [item["payload"] for item in iq["pubsub"]["items"]]
        result[key + "_fetched_identical"] = len(payloads) == 1 and c14n(payloads[0]) == c14n(sent)

    vcard = alice["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Example"
    vcard["NICKNAME"] = "al"
    await alice["xep_0054"].publish_vcard(vcard, timeout=TIMEOUT_S)
    iq = await bob["xep_0054"].get_vcard(alice_jid, timeout=TIMEOUT_S)
    result["vcard_fn"] = iq["vcard_temp"]["FN"]

    register_stanza_plugin(Notes, Notes)
    alice["xep_0049"].register(Notes)
    notes = Notes()
    notes["note"] = "bob likes tea"
    await alice["xep_0049"].store(notes, timeout=TIMEOUT_S)
    iq = await alice["xep_0049"].retrieve("notes", timeout=TIMEOUT_S)
    result["private_note"] = iq["private"]["notes"]["note"]

    bookmark_options = options(alice, persist_items="true", max_items="max",
                               send_last_published_item="never", access_model="whitelist")
    for room in ["tea", "cake"]:
        conference = Conference()
        conference["name"] = room.title()
        conference["autojoin"] = True
        await alice["xep_0060"].publish(None, "urn:xmpp:bookmarks:1",
                                        id=f"{room}@groups.example.com", payload=conference.xml,
                                        options=bookmark_options, timeout=TIMEOUT_S)
    iq = await alice["xep_0060"].get_items(alice.boundjid.bare, "urn:xmpp:bookmarks:1",
                                           timeout=TIMEOUT_S)
    result["bookmarks"] = sorted(item["id"] for item in iq["pubsub"]["items"])
    try:
        await bob["xep_0060"].get_items(alice_jid, "urn:xmpp:bookmarks:1", timeout=TIMEOUT_S)
        result["bookmarks_hidden_from_bob"] = False
    except IqError as err:
        result["bookmarks_hidden_from_bob"] = err.iq["error"]["condition"]

    iq = await bob["xep_0012"].get_last_activity(alice_jid, timeout=TIMEOUT_S)
    result["last_activity_seconds"] = iq["last_activity"]["seconds"]
    info = await bob["xep_0030"].get_info(alice_jid, timeout=TIMEOUT_S)
    result["pep_identity"] = ("pubsub", "pep") in [
        (cat, typ) for cat, typ, _, _ in info["disco_info"]["identities"]]
    disconnect(alice, bob)
    return result


if __name__ == "__main__":
    main(run, 6, __doc__, 6 * TIMEOUT_S)
