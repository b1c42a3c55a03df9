"""What the slixmpp interop scripts share: a client for this loopback test server, bringing
clients online, the wrong-password check, and the main that runs a scenario and prints its
result as one JSON object.

A scenario is `async def run(*args) -> dict`; `main` checks the argument count (printing the
script's usage on a mismatch, exit 2), runs it under an overall time limit, and prints the
dict with "ok": true, or {"ok": false, "error": ...} for whatever failed (exit 1), so the Rust
test can show it.
"""
import asyncio
import json
import logging
import sys

import slixmpp

TIMEOUT_S = 15


def make_client(jid, password, plugins=()):
    """A slixmpp client for the test server: plain TCP, PLAIN allowed without TLS."""
    client = slixmpp.ClientXMPP(jid, password)
    # No TLS on this loopback test server (slixmpp >= 1.9 API; older ones took connect flags).
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.enable_plaintext = True
    # slixmpp refuses PLAIN in the clear by default.
    client.plugin["feature_mechanisms"].unencrypted_plain = True
    for plugin in plugins:
        client.register_plugin(plugin)
    return client


async def online(host, port, *clients, roster=False):
    """Connects each client to HOST:PORT and waits (TIMEOUT_S each) until its session started
    and it sent its initial presence, after fetching its roster first if `roster`."""
    started = []
    for client in clients:
        event = asyncio.Event()

        async def on_start(_, client=client, event=event):
            if roster:
                await client.get_roster()
            client.send_presence()
            event.set()

        client.add_event_handler("session_start", on_start)
        client.connect(host, int(port))
        started.append(event)
    for event in started:
        await asyncio.wait_for(event.wait(), TIMEOUT_S)


async def wrong_password_refused(make, jid, password, host, port):
    """Whether a login as `jid` with a wrong password (made by `make(jid, password)`) ends in
    SASL failure (slixmpp's failed_auth) rather than a session."""
    mallory = make(jid, "wrong-" + password)
    refused = asyncio.get_event_loop().create_future()
    mallory.add_event_handler("failed_auth", lambda _: refused.done() or refused.set_result(True))
    mallory.add_event_handler("session_start", lambda _: refused.done() or refused.set_result(False))
    mallory.connect(host, int(port))
    try:
        return await asyncio.wait_for(refused, TIMEOUT_S)
    finally:
        mallory.disconnect()


def disconnect(*clients):
    for client in clients:
        client.disconnect()


def main(run, arg_count, usage, limit_s):
    logging.basicConfig(level=logging.WARNING)
    args = sys.argv[1:]
    if len(args) != arg_count:
        print(usage, file=sys.stderr)
        sys.exit(2)
    try:
        loop = asyncio.get_event_loop()
        result = loop.run_until_complete(asyncio.wait_for(run(*args), limit_s))
        result["ok"] = True
    except BaseException as err:  # report what failed as data; the Rust test prints it
        result = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)
