// A real browser user of rookery: Converse.js (npm `converse.js`) in Debian's headless
// Chromium, driven by puppeteer-core, logs in over XMPP-over-WebSocket and chats with a peer
// (a slixmpp client started beside it by engine/server/tests/browser.rs) through the page's
// own UI: it types a message, waits for the peer's answer, shares a PNG through the chat
// toolbar's file input (XEP-0363 upload from the page), waits for the peer to confirm it
// downloaded the image intact, and saves a screenshot of the conversation; then stays quiet
// for a while and reports whether it is still connected (the server's keepalive pings).
//
// What it does not do: check the image bytes itself (the peer does, against IMAGE), or keep
// anything running: the static server and the browser are closed on every exit path, and an
// overall timer ends the run.
//
// Prints one JSON object on stdout ({"ok": true, ...} or {"ok": false, "error": ...}); exits
// 0 only if every step happened. Page console lines and browser events go to stderr.
//
// Usage: node driver.mjs WS_URL JID PASSWORD PEER_JID IMAGE_PATH SCREENSHOT_PATH
//   IMAGE_PATH is written here (a PNG made by this script) before the page uploads it.

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';

import puppeteer from 'puppeteer-core';

const CHROMIUM = process.env.ROOKERY_CHROMIUM || '/usr/bin/chromium';
// Every wait in the page is bounded by this; the whole run by OVERALL_MS.
const STEP_MS = 20_000;
const OVERALL_MS = 90_000;
const HELLO = 'hello from the browser';
const REPLY = 'hello from slixmpp';
const CONFIRM = 'image received intact';
// A quiet spell at the end, long enough for two of the server's keepalive pings (each after
// a quiet second and a check every second: rookery runs with --ws-ping-interval 1): the
// browser must answer the first itself, or the second never comes.
const QUIET_MS = 7000;

const here = path.dirname(fileURLToPath(import.meta.url));
const DIST = path.join(here, 'node_modules', 'converse.js', 'dist');

const TYPES = {
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.css': 'text/css',
    '.json': 'application/json',
    '.wasm': 'application/wasm',
    '.svg': 'image/svg+xml',
    '.png': 'image/png',
    '.woff': 'font/woff',
    '.woff2': 'font/woff2',
    '.ttf': 'font/ttf',
    '.mp3': 'audio/mpeg',
    '.ogg': 'audio/ogg',
    '.map': 'application/json',
};

/** The test page: Converse 14 as an ES module, with a plugin exposing its API for the waits. */
function page(settings) {
    return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>rookery browser test</title>
<link rel="stylesheet" href="/dist/converse.min.css"></head>
<body class="converse-fullscreen">
<script type="module">
import converse from '/dist/converse.min.js';
window.rookeryState = { connected: false, events: [] };
converse.plugins.add('rookery-test', {
    initialize() {
        const api = this._converse.api;
        window.rookeryApi = api;
        api.listen.on('connected', () => { window.rookeryState.connected = true; });
        api.listen.on('disconnected', () => { window.rookeryState.events.push('disconnected'); });
    },
});
converse.initialize(${JSON.stringify(settings)});
</script></body></html>`;
}

/** Serves the page at / and Converse's dist/ under /dist/ (nothing else) on 127.0.0.1. */
function serve(html) {
    const server = http.createServer((req, res) => {
        const url = new URL(req.url, 'http://127.0.0.1');
        if (url.pathname === '/') {
            res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
            res.end(html);
            return;
        }
        const rel = url.pathname.startsWith('/dist/') ? url.pathname.slice('/dist/'.length) : null;
        const file = rel === null ? null : path.resolve(DIST, decodeURIComponent(rel));
        if (!file || !file.startsWith(DIST + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
            res.writeHead(404);
            res.end();
            return;
        }
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
        fs.createReadStream(file).pipe(res);
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** A 240x120 RGB PNG (a gradient with a rookery-ish stripe), made without any library. */
function png() {
    const width = 240;
    const height = 120;
    const raw = Buffer.alloc((width * 3 + 1) * height);
    for (let y = 0; y < height; y++) {
        const row = y * (width * 3 + 1);
        raw[row] = 0; // filter: none
        for (let x = 0; x < width; x++) {
            const stripe = Math.abs(y - height / 2) < 10;
            raw[row + 1 + x * 3] = stripe ? 20 : x;
            raw[row + 2 + x * 3] = stripe ? 20 : 2 * y;
            raw[row + 3 + x * 3] = stripe ? 30 : 255 - x;
        }
    }
    const chunk = (type, data) => {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(data.length);
        const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
        const crc = Buffer.alloc(4);
        crc.writeUInt32BE(zlib.crc32(body));
        return Buffer.concat([length, body, crc]);
    };
    const header = Buffer.alloc(13);
    header.writeUInt32BE(width, 0);
    header.writeUInt32BE(height, 4);
    header[8] = 8; // bit depth
    header[9] = 2; // colour type: RGB
    return Buffer.concat([
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
        chunk('IHDR', header),
        chunk('IDAT', zlib.deflateSync(raw)),
        chunk('IEND', Buffer.alloc(0)),
    ]);
}

/** Waits until `fn(...args)` is truthy in the page; `what` names the step in the error. */
async function until(tab, what, fn, ...args) {
    console.error(`step: ${what}`);
    try {
        return await tab.waitForFunction(fn, { timeout: STEP_MS, polling: 100 }, ...args);
    } catch (err) {
        throw new Error(`${what}: not within ${STEP_MS} ms (${err.message.split('\n')[0]})`);
    }
}

/** Texts of the messages shown in the open chat, oldest first. */
function shownMessages(tab) {
    return tab.$$eval('converse-chat converse-chat-message .chat-msg__text', (els) =>
        els.map((el) => el.textContent.trim()).filter((t) => t.length > 0),
    );
}

/** Waits until a message containing `text` is shown in the open chat. */
function shown(tab, what, text) {
    return until(
        tab,
        what,
        (text) => [...document.querySelectorAll('converse-chat converse-chat-message')].some((el) => el.textContent.includes(text)),
        text,
    );
}

async function run([wsUrl, jid, password, peer, imagePath, screenshotPath], result, cleanups, abort) {
    fs.writeFileSync(imagePath, png());
    result.image_bytes = fs.statSync(imagePath).size;

    const settings = {
        websocket_url: wsUrl,
        jid,
        password,
        auto_login: true,
        auto_reconnect: false,
        discover_connection_methods: false,
        view_mode: 'fullscreen',
        whitelisted_plugins: ['rookery-test'],
        blacklisted_plugins: ['converse-omemo', 'converse-notification'],
        play_sounds: false,
        show_desktop_notifications: false,
        loglevel: 'info',
        i18n: 'en',
    };
    const server = await serve(page(settings));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const pageUrl = `http://127.0.0.1:${server.address().port}/`;

    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'rookery-chromium-'));
    cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
    const browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        userDataDir: profile,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-dev-shm-usage',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
        defaultViewport: { width: 1100, height: 760 },
        dumpio: process.env.ROOKERY_BROWSER_DUMPIO === '1',
    });
    cleanups.push(() => browser.close());
    browser.on('disconnected', () => abort(new Error('the browser exited (or its DevTools connection dropped)')));

    const tab = await browser.newPage();
    // On a failure, main() saves what the page showed then.
    cleanups.push(async () => {
        if (!result.screenshot) {
            await tab.screenshot({ path: screenshotPath });
            result.failure_screenshot = screenshotPath;
        }
    });
    tab.on('console', (msg) => console.error(`page ${msg.type()}: ${msg.text()}`));
    tab.on('pageerror', (err) => console.error(`page error: ${err.message}`));
    tab.on('response', (res) => res.status() >= 400 && console.error(`response ${res.status()}: ${res.url()}`));
    tab.on('requestfailed', (req) => console.error(`request failed: ${req.url()} ${req.failure()?.errorText}`));
    await tab.goto(pageUrl, { waitUntil: 'load', timeout: STEP_MS });

    await until(tab, 'login over WebSocket', () => window.rookeryState?.connected === true);
    result.logged_in_as = await tab.evaluate(() => window.rookeryApi.connection.get().jid);

    // The peer becomes a roster contact first (as a person would add them), then the chat
    // opens. Converse 14 opening a chat with a JID that is not a contact waits for its
    // XEP-0191 blocklist, which never arrives from a server without XEP-0191 (rookery): the
    // open would hang. Both calls return nothing on purpose: the models are large cyclic
    // graphs, and evaluate() would serialize them over the DevTools connection, which then
    // drops (that looked like "the browser exited" in an earlier attempt).
    console.error('step: add the peer as a contact and open the chat');
    await tab.evaluate(async (peerJid) => {
        const api = window.rookeryApi;
        await api.contacts.add({ jid: peerJid, name: 'slixmpp peer' });
        await api.chats.open(peerJid, {}, true);
    }, peer);
    await until(tab, 'the chat with the peer', () => !!document.querySelector('converse-chat textarea.chat-textarea'));
    await tab.type('converse-chat textarea.chat-textarea', HELLO);
    await tab.keyboard.press('Enter');

    await shown(tab, 'the peer reply', REPLY);

    await until(tab, 'the upload button (XEP-0363 service found)', () => !!document.querySelector('converse-chat input.fileupload'));
    const input = await tab.$('converse-chat input.fileupload');
    await input.uploadFile(imagePath);
    await shown(tab, 'the peer confirms the image', CONFIRM);
    // The image as the page shows it: loaded from rookery's download URL.
    result.shown_image = await tab.evaluate(() => {
        const img = [...document.querySelectorAll('converse-chat converse-chat-message img')].find((el) =>
            el.getAttribute('src')?.includes('/download/'),
        );
        return img ? { src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth } : null;
    });
    result.messages = await shownMessages(tab);
    await tab.screenshot({ path: screenshotPath });
    result.screenshot = screenshotPath;

    console.error(`step: quiet for ${QUIET_MS} ms (the server's keepalive pings)`);
    await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    result.connected_after_quiet = await tab.evaluate(
        () => window.rookeryState.connected && !window.rookeryState.events.includes('disconnected'),
    );
}

async function main() {
    const args = process.argv.slice(2);
    if (args.length !== 6) {
        console.error('usage: node driver.mjs WS_URL JID PASSWORD PEER_JID IMAGE_PATH SCREENSHOT_PATH');
        process.exit(2);
    }
    const result = {};
    const cleanups = [];
    let timer;
    let abort;
    try {
        // Rejected by the overall timer or when the browser goes away: whatever step is waiting.
        const aborted = new Promise((_, reject) => {
            abort = reject;
            timer = setTimeout(() => reject(new Error(`the whole run took over ${OVERALL_MS} ms`)), OVERALL_MS);
        });
        await Promise.race([run(args, result, cleanups, abort), aborted]);
        result.ok = true;
    } catch (err) {
        result.ok = false;
        result.error = `${err.name}: ${err.message}`;
    } finally {
        clearTimeout(timer);
        for (const cleanup of cleanups.reverse()) {
            try {
                await cleanup();
            } catch (err) {
                console.error(`cleanup: ${err.message}`);
            }
        }
    }
    console.log(JSON.stringify(result));
    process.exit(result.ok ? 0 : 1);
}

main();
