// Ways to stand between the channel and the real gateway, real sockets all
// the way, and do what a broken gateway or a meddling middlebox would: put
// in a frame the gateway would never send, or go silent while the
// connection stays open. Both answer `{ url, live(), inject(text),
// silence(), close() }`: connect the channel to `url`, wait for `live()`;
// `inject` sends `text` as one frame on the live connection; `silence`
// passes nothing more from the gateway on it (a later connection passes
// everything again).
import { createServer, request } from 'node:http';
import { eventually } from '../e2e/harness.mjs';

/**
 * Connects a channel in `page` to `gateway` through a wire of the kind its
 * `options.transport` needs, and waits until the connection is live. The
 * channel is `window.c` in the page (what `t.connect` answers, plus
 * `events`: what a handler of `pattern` got). Answers the wire.
 */
export async function connectThrough(page, gateway, options, pattern) {
  const wire = options.transport === 'websocket' ? await webSocketInjector(page, gateway) : await sseInjector(gateway);
  await page.evaluate(
    async ({ options, pattern }) => {
      window.c = await t.connect(options);
      window.c.events = t.record(window.c.channel, pattern);
      // Let the connection settle (on SSE a new pattern may reopen the stream).
      await t.sleep(300);
    },
    { options: { ...options, url: wire.url }, pattern },
  );
  await eventually('the connection to be live', () => wire.live());
  return wire;
}

/** WebSocket: Playwright's `routeWebSocket` in the page, connected through
 * to the gateway (`connectToServer`), so every real frame passes both ways;
 * `inject` sends one more to the page. */
export async function webSocketInjector(page, gateway) {
  const sockets = [];
  await page.routeWebSocket(/\/v1\/ws/, (ws) => {
    const socket = { ws, silent: false };
    ws.connectToServer().onMessage((m) => socket.silent || ws.send(m));
    sockets.push(socket);
  });
  return {
    url: gateway,
    live: () => sockets.length > 0,
    inject: (text) => sockets.at(-1).ws.send(text),
    silence: () => {
      sockets.at(-1).silent = true;
    },
    close: () => {},
  };
}

const endsAnEvent = (chunk) => chunk.length >= 2 && chunk[chunk.length - 2] === 10 && chunk[chunk.length - 1] === 10;

/** SSE: a loopback HTTP proxy in front of the gateway that forwards every
 * request (streams, POSTs, CORS preflights) and can slip `data: <text>`
 * into the event streams passing through it, between two of the gateway's
 * events. */
export function sseInjector(gateway) {
  const target = new URL(gateway);
  const streams = new Set();
  let opened = 0;
  const server = createServer((req, res) => {
    // No compression, so the stream can be written into as text.
    const { host, 'accept-encoding': _, ...headers } = req.headers;
    const upstream = request(
      { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        if (!String(answer.headers['content-type']).startsWith('text/event-stream')) {
          answer.pipe(res);
          return;
        }
        const stream = { res, between: false, queued: [], silent: false };
        streams.add(stream);
        opened++;
        answer.on('data', (chunk) => {
          if (stream.silent) return;
          res.write(chunk);
          stream.between = endsAnEvent(chunk);
          if (stream.between) for (const q of stream.queued.splice(0)) res.write(q);
        });
        const done = () => {
          streams.delete(stream);
          answer.destroy();
          res.end();
        };
        answer.on('end', done);
        res.on('close', done);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  // A test that fails before its `close()` must not keep the process alive.
  server.unref();
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        live: () => [...streams].some((s) => s.between),
        /** How many event streams the gateway has answered through the proxy. */
        opened: () => opened,
        silence() {
          [...streams].at(-1).silent = true;
        },
        /** Into the newest stream: the one the channel listens to. */
        inject(text) {
          const s = [...streams].at(-1);
          const frame = `data: ${text}\n\n`;
          if (s.between) s.res.write(frame);
          else s.queued.push(frame);
        },
        close() {
          server.closeAllConnections();
          server.close();
        },
      }),
    );
  });
}
