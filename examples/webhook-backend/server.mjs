// An example backend in plain node:http: the gateway pushes the demo's UI
// events to POST /hooks as signed webhooks; each is checked with
// verifyWebhook and answered with a notification published through
// eventwire/server, which every page subscribed to `notification.>` sees.
//
//   node server.mjs [gateway URL] [port]     (defaults http://127.0.0.1:8080, 3000)
//
// At start it registers its webhook (PUT /v1/webhooks/demo-backend). The
// secret comes from EVENTWIRE_WEBHOOK_SECRET, or is made once and kept in
// .webhook-secret beside this file, so a restart finds the same webhook
// (200) and the events that waited for it. Each handled event is printed
// as one JSON line.
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Eventwire, verifyWebhook } from 'eventwire/server';

const gateway = process.argv[2] ?? 'http://127.0.0.1:8080';
const port = Number(process.argv[3] ?? 3000);
const WEBHOOK = 'demo-backend';

/** The demo's events, shared in spirit with www/src/main.ts. */
/** @typedef {{
 *   'ui.clicked': { target: string; click: number };
 *   'ui.submitted': { text: string };
 *   'notification.clicked': { message: string; click: number };
 *   'notification.note': { message: string };
 *   'notification.seen': { message: string };
 * }} Events */

function secret() {
  if (process.env.EVENTWIRE_WEBHOOK_SECRET) return process.env.EVENTWIRE_WEBHOOK_SECRET;
  const file = new URL('.webhook-secret', import.meta.url);
  if (!existsSync(file)) {
    writeFileSync(file, `whsec_${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  }
  return readFileSync(file, 'utf8').trim();
}

const SECRET = secret();
/** @type {import('eventwire/server').Eventwire<Events>} */
const ew = new Eventwire({ url: gateway, source: 'example-webhook-backend' });

/** The business logic: one notification per UI event, as the Rust worker does. */
function react(ui) {
  const correlationid = ui.correlationid ?? ui.id;
  // The notification's id derives from the UI event's: a webhook retried
  // after a lost answer publishes nothing twice.
  const options = { id: `n-${ui.id}`, correlationid };
  switch (ui.type) {
    case 'ui.clicked':
      return ew.publish(
        'notification.clicked',
        { message: `Someone pressed ${ui.data?.target ?? 'a button'}`, click: ui.data?.click },
        options,
      );
    case 'ui.submitted':
      return ew.publish('notification.note', { message: `New note: ${ui.data?.text ?? ''}` }, options);
    default:
      return ew.publish('notification.seen', { message: `Saw ${JSON.stringify(ui.type)}` }, options);
  }
}

const server = createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/hooks') {
    res.writeHead(404).end();
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    let ui;
    try {
      // The raw body, exactly as received: the signature covers its bytes.
      ui = verifyWebhook(Buffer.concat(chunks), req.headers, SECRET);
    } catch (e) {
      console.error(`refused a webhook: ${e.code}: ${e.message}`);
      res.writeHead(401).end();
      return;
    }
    try {
      await react(ui);
    } catch (e) {
      // Not handled: a non-2xx answer makes the gateway retry later.
      console.error(`could not publish the notification: ${e.message}`);
      res.writeHead(503, { 'retry-after': '1' }).end();
      return;
    }
    console.log(JSON.stringify({ handled: ui.id, type: ui.type, seq: ui.seq, correlationid: ui.correlationid, data: ui.data }));
    res.writeHead(204).end();
  });
});

/** Registers the webhook; a different existing one (another secret or URL) is replaced. */
async function register() {
  const url = `${gateway}/v1/webhooks/${WEBHOOK}`;
  const spec = {
    url: `http://127.0.0.1:${port}/hooks`,
    topics: ['ui.>'],
    secret: SECRET,
    timeout: '5s',
    max_inflight: 1,
    retry: { initial: '500ms', max: '30s' },
  };
  const put = () =>
    fetch(url, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  let r = await put();
  if (r.status === 409) {
    console.error(`webhook ${WEBHOOK} exists with another configuration: replacing it`);
    await fetch(url, { method: 'DELETE' });
    r = await put();
  }
  if (!r.ok) throw new Error(`registering the webhook: HTTP ${r.status} ${await r.text()}`);
}

server.listen(port, '127.0.0.1', async () => {
  for (;;) {
    try {
      await register();
      break;
    } catch (e) {
      console.error(`${e.message}; trying again in 1 s`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  console.error(`webhook backend: http://127.0.0.1:${port}/hooks receives ${gateway}'s ui.> events`);
});
