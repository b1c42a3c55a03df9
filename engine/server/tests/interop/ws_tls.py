"""Two users over `wss://` (the HTTP listener's TLS, relayed to the shards): log in, chat.

Usage: ws_tls.py HOST HTTP_PORT DOMAIN CA_PEM JID1 PASSWORD1 JID2 PASSWORD2
"""
import os
import ssl
import sys

import websockets

sys.path.insert(0, os.path.dirname(__file__))
from slix_common import main  # noqa: E402
from ws_common import CLIENT, WsXmpp, tag  # noqa: E402


class WssXmpp(WsXmpp):
    def __init__(self, url, domain, context):
        super().__init__(url, domain)
        self.context = context

    async def connect(self):
        self.ws = await websockets.connect(
            self.url, subprotocols=["xmpp"], ssl=self.context, server_hostname=self.domain
        )


async def run(host, http_port, domain, ca_pem, jid1, password1, jid2, password2):
    context = ssl.create_default_context(cafile=ca_pem)
    url = f"wss://{host}:{http_port}/xmpp-websocket"
    one, two = WssXmpp(url, domain, context), WssXmpp(url, domain, context)
    await one.login(jid1, password1, "tls1")
    await two.login(jid2, password2, "tls2")
    await one.send(
        f"<message xmlns='{CLIENT}' to='{two.jid}' type='chat'><body>over wss</body></message>"
    )
    got = await two.expect(lambda e: e.tag == tag(CLIENT, "message"), "the message")
    result = {"wss_body": got.find(tag(CLIENT, "body")).text, "wss_from": got.get("from")}
    await one.close()
    await two.close()
    return result


if __name__ == "__main__":
    main(run, 8, __doc__, 30)
