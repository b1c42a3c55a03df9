#!/usr/bin/env python3
"""XEP-0363 HTTP File Upload with a real client library (slixmpp's xep_0363, aiohttp).

Mode "upload" (a server started with --upload-max-bytes 100000 --upload-quota-bytes 120000
--upload-slot-ttl 2 --upload-content-types text/*,application/octet-stream):
alice finds the upload service through disco (slixmpp's own discovery: the domain's
disco#items, then each item's disco#info), uploads a 50,000-byte file with upload_file and
sends bob the URL in a chat message; bob downloads it over HTTP (whole and a Range) and
compares bytes. Then the refusals: a file too large (<file-too-large> with max-file-size), a
bad file name, a content type not allowed, a PUT after the slot expired (403), and past the
quota (alice's stored file counts once its slot expired: resource-constraint), while bob,
another user, still gets a slot of that size.

Mode "restart" (the same server restarted on the same data dir): bob downloads the file
again, and alice's quota still counts it (rebuilt from the files on disk at start).

Prints one JSON object; exits 0 only if every step happened as described.

Usage: slix_upload.py HOST PORT MODE URL_OR_DASH ALICE ALICE_PASSWORD BOB BOB_PASSWORD
"""
import asyncio
import os
import tempfile

import aiohttp
from slixmpp.exceptions import IqError

from slix_common import TIMEOUT_S, disconnect, main, make_client, online

FILE_BYTES = 50_000


def upload_client(jid, password):
    return make_client(jid, password, ("xep_0030", "xep_0363"))


async def refusal(client, service, filename, size, content_type):
    """The error of a slot request that must be refused: condition, type, error XML."""
    try:
        await client.plugin["xep_0363"].request_slot(service, filename, size, content_type, timeout=TIMEOUT_S)
    except IqError as err:
        error = err.iq["error"]
        return {"condition": error["condition"], "type": error["type"], "xml": str(err.iq)}
    raise AssertionError(f"slot for {filename!r} ({size} B, {content_type}) was not refused")


async def download(url, range_header=None):
    headers = {"Range": range_header} if range_header else {}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as response:
            return response.status, await response.read()


async def upload_mode(alice, bob, bob_jid):
    result = {}
    content = os.urandom(FILE_BYTES)
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(content)
        path = f.name
    try:
        url = await alice.plugin["xep_0363"].upload_file(path, content_type="text/plain", timeout=TIMEOUT_S)
    finally:
        os.unlink(path)
    xep = alice.plugin["xep_0363"]
    result["service"] = str(xep.upload_service)
    result["max_file_size"] = xep.max_file_size
    result["url"] = url

    got = asyncio.get_event_loop().create_future()
    bob.add_event_handler("message", lambda msg: got.done() or got.set_result(msg["body"]))
    alice.send_message(mto=bob_jid, mbody=url, mtype="chat")
    body = await asyncio.wait_for(got, TIMEOUT_S)
    status, data = await download(body)
    result["download_status"] = status
    result["download_identical"] = data == content
    status, part = await download(body, "bytes=100-1099")
    result["range_status"] = status
    result["range_identical"] = part == content[100:1100]

    service = xep.upload_service
    big = await refusal(alice, service, "big.bin", 100_001, "application/octet-stream")
    result["too_large"] = {"condition": big["condition"], "type": big["type"],
                           "file_too_large": "file-too-large" in big["xml"],
                           "max_file_size_100000": "<max-file-size>100000</max-file-size>" in big["xml"]}
    bad = await refusal(alice, service, "..", 10, "text/plain")
    result["bad_filename"] = [bad["condition"], bad["type"]]
    html = await refusal(alice, service, "a.png", 10, "image/png")
    result["type_not_allowed"] = [html["condition"], html["type"]]

    slot = await xep.request_slot(service, "late.txt", 10, "text/plain", timeout=TIMEOUT_S)
    await asyncio.sleep(3)  # the slot lives 2 s
    put_url = slot["http_upload_slot"]["put"]["url"]
    async with aiohttp.ClientSession() as http:
        headers = {"Content-Type": "text/plain", "Content-Length": "10"}
        async with http.put(put_url, data=b"0123456789", headers=headers) as response:
            result["expired_put_status"] = response.status

    # 50,000 stored (its slot expired meanwhile, so only the HTTP side's report counts it)
    # + 80,000 > 120,000.
    quota = await refusal(alice, service, "more.txt", 80_000, "text/plain")
    result["quota"] = [quota["condition"], quota["type"]]
    other = await bob.plugin["xep_0363"].request_slot(service, "bob.txt", 80_000, "text/plain", timeout=TIMEOUT_S)
    result["other_user_slot"] = bool(other["http_upload_slot"]["put"]["url"])
    return result


async def restart_mode(alice, url):
    result = {}
    status, data = await download(url)
    result["download_status"] = status
    result["download_bytes"] = len(data)
    service = await alice.plugin["xep_0363"].find_upload_service(timeout=TIMEOUT_S)
    quota = await refusal(alice, service["from"], "more.txt", 80_000, "text/plain")
    result["quota"] = [quota["condition"], quota["type"]]
    return result


async def run(host, port, mode, url, alice_jid, alice_pw, bob_jid, bob_pw):
    alice = upload_client(alice_jid, alice_pw)
    bob = upload_client(bob_jid, bob_pw)
    await online(host, port, alice, bob)
    try:
        if mode == "upload":
            result = await upload_mode(alice, bob, bob_jid)
        else:
            result = await restart_mode(alice, url)
    finally:
        disconnect(alice, bob)
    return result


if __name__ == "__main__":
    main(run, 8, __doc__, 60)
