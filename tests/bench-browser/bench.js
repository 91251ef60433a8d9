// The page side of the browser benchmark: one client at a time (a plain
// EventSource + JSON.parse, a plain WebSocket + JSON.parse, or EventChannel
// over SSE or WebSocket; `base-` modes use another build of the package,
// staged under pkg-base/, to compare two builds in one run) counts the
// events that reach its handler and notes when the first and last arrived.
// run.mjs drives it through window.bench and publishes from Node.
import { EventChannel } from './pkg/index.js';

const state = { n: 0, first: 0, last: 0, sum: 0, expected: 0, done: null, close: null };

// The handler both kinds of client run: touch the payload, count, time.
function hit(ev) {
  const t = performance.now();
  if (state.n === 0) state.first = t;
  state.n += 1;
  state.last = t;
  state.sum += ev.data.s;
  if (state.n === state.expected && state.done) state.done();
}

function sseUrl(topic) {
  // The same stream EventChannel's SSE transport opens.
  return `/v1/sse?topic=${encodeURIComponent(topic)}&named=0&heartbeat=event`;
}

window.bench = {
  /** Opens one client on `topic`; resolves once the gateway welcomed it. */
  async start(mode, topic, expected) {
    Object.assign(state, { n: 0, first: 0, last: 0, sum: 0, expected, done: null, close: null });
    if (mode === 'eventsource') {
      const es = new EventSource(sseUrl(topic));
      await new Promise((resolve, reject) => {
        es.addEventListener('$welcome', () => resolve(), { once: true });
        es.onerror = () => reject(new Error('EventSource failed to open'));
      });
      es.onmessage = (e) => hit(JSON.parse(e.data));
      state.close = () => es.close();
    } else if (mode === 'websocket') {
      // What the browser's WebSocket costs by itself, for the channel's WS ratio.
      const ws = new WebSocket(`${location.origin.replace(/^http/, 'ws')}/v1/ws`);
      await new Promise((resolve, reject) => {
        ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', ref: 'sub', topics: [topic] }));
        ws.onmessage = (e) => {
          if (JSON.parse(e.data).op === 'subscribed') resolve();
        };
        ws.onerror = () => reject(new Error('WebSocket failed to open'));
      });
      ws.onmessage = (e) => {
        const f = JSON.parse(e.data);
        if (f.op === 'event') hit(f.event);
      };
      state.close = () => ws.close();
    } else {
      const transport = mode.endsWith('channel-ws') ? 'websocket' : 'sse';
      const Channel = mode.startsWith('base-') ? (await import('./pkg-base/index.js')).EventChannel : EventChannel;
      const ch = await Channel.connect({ url: location.origin, transport, topics: [topic] });
      ch.subscribe(topic, hit);
      state.close = () => ch.close();
    }
    document.getElementById('status').textContent = `${mode} open on ${topic}`;
  },

  /** Resolves when every expected event arrived, or after `timeoutMs`. */
  async wait(timeoutMs) {
    if (state.n < state.expected) {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        state.done = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const result = { n: state.n, ms: state.last - state.first, sum: state.sum };
    if (state.close) await state.close();
    return result;
  },

  /** Keeps the page's thread busy, so events queue up before dispatch. */
  block(ms) {
    const end = performance.now() + ms;
    while (performance.now() < end) {
      // busy on purpose
    }
    return ms;
  },
};

document.getElementById('status').textContent = 'ready';
window.benchReady = true;
