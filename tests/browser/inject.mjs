// Ways to put a frame the gateway would never send in front of the channel,
// with the real gateway still behind it and real sockets all the way: what
// a broken gateway or a meddling middlebox would do. Both answer
// `{ url, live(), inject(text) }`: connect the channel to `url`, wait for
// `live()`, then `inject` sends `text` as one frame on the live connection.
import { createServer, request } from 'node:http';

/** WebSocket: Playwright's `routeWebSocket` in the page, connected through
 * to the gateway (`connectToServer`), so every real frame passes both ways;
 * `inject` sends one more to the page. */
export async function webSocketInjector(page, gateway) {
  const sockets = [];
  await page.routeWebSocket(/\/v1\/ws/, (ws) => {
    ws.connectToServer();
    sockets.push(ws);
  });
  return {
    url: gateway,
    live: () => sockets.length > 0,
    inject: (text) => sockets.at(-1).send(text),
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
        const stream = { res, between: false, queued: [] };
        streams.add(stream);
        answer.on('data', (chunk) => {
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
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}`,
        live: () => [...streams].some((s) => s.between),
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
