// An independent WebSocket client for the wsbridge tests: npm ws drives
// the routes of realclient_test.go's test site and prints one line per
// check. Usage: node client.js ws://host:port on|off (permessage-deflate).
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');

const [base, deflate] = process.argv.slice(2);
// threshold 0: compress every message, so the server inflates them all.
const pmd = deflate === 'on' ? { threshold: 0 } : false;
const open = (path, protocols) =>
  new WebSocket(base + path, protocols || [], { perMessageDeflate: pmd, handshakeTimeout: 10000 });
const ext = (ws) => ws.extensions || 'none';

function withTimeout(name, p) {
  return Promise.race([p, new Promise((resolve) => setTimeout(() => resolve(name + ' timeout'), 20000))]);
}

// bridge: the backend echoes bytes, which may come back in other message
// sizes; compare the concatenation.
function bridge(path, sends, wantText) {
  return new Promise((resolve) => {
    const ws = open(path);
    const want = Buffer.concat(sends.map((s) => Buffer.from(s)));
    const got = [];
    let n = 0;
    let kindsOK = true;
    ws.on('open', () => sends.forEach((s) => ws.send(s)));
    ws.on('message', (data, isBinary) => {
      if (isBinary === wantText) kindsOK = false;
      got.push(Buffer.from(data));
      n += data.length;
      if (n >= want.length) {
        const ok = Buffer.concat(got).equals(want) && kindsOK;
        resolve(path + (ok ? ' ok' : ' MISMATCH') + ' ext=' + ext(ws));
        ws.close(1000);
      }
    });
    ws.on('error', (e) => resolve(path + ' error ' + e.message));
  });
}

// echo: the Conn API echoes each message, type and all.
function echo(sends) {
  return new Promise((resolve) => {
    const ws = open('/echo', ['v0.test', 'v1.test']);
    const lines = [];
    let i = 0;
    let bad = 0;
    ws.on('open', () => sends.forEach((s) => ws.send(s)));
    ws.on('message', (data, isBinary) => {
      const s = sends[i++];
      if (isBinary !== (typeof s !== 'string') || !Buffer.from(data).equals(Buffer.from(s))) bad++;
      if (i === sends.length) {
        lines.push('/echo ' + (bad ? bad + ' MISMATCHED' : 'ok') + ' protocol=' + ws.protocol + ' ext=' + ext(ws));
        ws.close(1000, 'done');
      }
    });
    ws.on('close', (code) => {
      lines.push('/echo close ' + code);
      resolve(lines.join('\n'));
    });
    ws.on('error', (e) => resolve('/echo error ' + e.message));
  });
}

// tooBig: a message over the bridge's 1 MiB limit gets close 1009.
function tooBig() {
  return new Promise((resolve) => {
    const ws = open('/bridge');
    ws.on('open', () => ws.send(crypto.randomBytes(2 << 20)));
    ws.on('close', (code) => resolve('/bridge bad frame close ' + code));
    ws.on('error', () => {});
  });
}

(async () => {
  const text = 'h\u00e9llo \u20ac \ud83d\ude00 ' + 'la la '.repeat(2000);
  const results = [];
  results.push(await withTimeout('/bridge', bridge('/bridge',
    [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), crypto.randomBytes(300000), text, Buffer.alloc(0)], false)));
  results.push(await withTimeout('/text', bridge('/text', [text, 'line one\nline two \u00e9\n'], true)));
  results.push(await withTimeout('/echo', echo([crypto.randomBytes(70000), text, '', Buffer.alloc(0), 'x'])));
  results.push(await withTimeout('/bridge 1009', tooBig()));
  console.log(results.join('\n'));
  process.exit(results.some((r) => /timeout|error|MISMATCH/.test(r)) ? 1 : 0);
})();
