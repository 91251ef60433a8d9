// The demo page: emits UI events, shows live notifications, and shows what
// the backend worker did in response (matched by correlation id).
import { EventChannel, type ConnectionState, type EventEnvelope, type StateInfo } from 'eventwire';
import './style.css';

type Events = {
  'ui.clicked': { target: string; click: number };
  'ui.submitted': { text: string };
  'notification.clicked': { message: string; click: number };
  'notification.note': { message: string };
  'notification.seen': { message: string };
};

const $ = <T extends HTMLElement>(sel: string) => document.querySelector<T>(sel)!;
const params = new URLSearchParams(location.search);
const gateway = params.get('gateway') ?? location.origin;
const minBackoffMs = Number(params.get('minBackoffMs') ?? 500);
const select = $<HTMLSelectElement>('#transport');
select.value = params.get('transport') ?? 'auto';

let channel: EventChannel<Events> | null = null;
let clicks = 0;
let correlations = 0;
/** Emits of this page, by correlation id, to show what the backend did about them. */
const mine = new Map<string, { type: string; at: number }>();

function clock(iso: string): string {
  return new Date(iso).toLocaleTimeString();
}

function row(list: HTMLElement, cells: [string, string][]): HTMLLIElement {
  const li = document.createElement('li');
  for (const [cls, text] of cells) {
    const el = document.createElement(cls === 'time' ? 'time' : 'span');
    el.className = cls;
    el.textContent = text;
    li.append(el);
  }
  list.prepend(li);
  return li;
}

function toast(text: string): void {
  const t = document.createElement('div');
  t.className = 'toast';
  t.textContent = text;
  $('#toasts').append(t);
  setTimeout(() => t.remove(), 4000);
}

function showError(err: { code?: string; message?: string } | null): void {
  const el = $('#error');
  el.hidden = !err;
  el.textContent = err ? `${err.code ?? 'error'}: ${err.message ?? ''}` : '';
}

let reconnects = 0;
let opens = 0;

function badge(state: ConnectionState | 'connecting', info?: StateInfo): void {
  const b = $('#badge');
  if (state === 'reconnecting' && b.dataset.state !== 'reconnecting') reconnects++;
  b.dataset.reconnects = String(reconnects);
  // Whether the last (re)connection resumed without a gap: tests read it.
  if (state === 'open' && info) {
    b.dataset.opens = String(++opens);
    b.dataset.recovered = String(info.recovered !== false);
  }
  b.dataset.state = state;
  b.dataset.transport = channel?.transport ?? '';
  b.textContent = channel?.transport ? `${state} · ${channel.transport}` : state;
}

function onNotification(e: EventEnvelope<string, { message: string }>): void {
  const li = row($('#feed'), [
    ['time', clock(e.time)],
    ['type', e.type],
    ['data', JSON.stringify(e.data)],
  ]);
  li.dataset.correlationid = e.correlationid ?? '';
  toast(e.data.message);
  const cause = e.correlationid ? mine.get(e.correlationid) : undefined;
  if (cause) {
    const ms = Math.round(performance.now() - cause.at);
    const b = row($('#backend'), [
      ['time', clock(e.time)],
      ['what', `Your ${cause.type} → ${e.type} (${ms} ms): ${e.data.message}`],
    ]);
    b.dataset.correlationid = e.correlationid ?? '';
  }
}

async function emit<K extends 'ui.clicked' | 'ui.submitted'>(type: K, data: Events[K]): Promise<void> {
  if (!channel) return;
  const correlationid = `c-${Date.now().toString(36)}-${++correlations}`;
  mine.set(correlationid, { type, at: performance.now() });
  try {
    await channel.emit(type, data, { correlationid });
    showError(null);
  } catch (e) {
    mine.delete(correlationid);
    showError(e as { code?: string; message?: string });
  }
}

async function start(): Promise<void> {
  await channel?.close();
  channel = null;
  badge('connecting');
  try {
    const transport = select.value as 'auto' | 'websocket' | 'sse';
    const ch = await EventChannel.connect<Events>({ url: gateway, transport, topics: ['notification.>'], minBackoffMs });
    channel = ch;
    ch.onState((state, info) => badge(state, info));
    ch.onError((err) => showError(err));
    ch.subscribe('notification.>', onNotification);
    badge(ch.state);
  } catch (e) {
    badge('closed');
    showError(e as { code?: string; message?: string });
  }
}

document.querySelectorAll<HTMLButtonElement>('button.emit').forEach((b) =>
  b.addEventListener('click', () => void emit('ui.clicked', { target: b.dataset.target!, click: ++clicks })),
);
$('#note-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = $<HTMLInputElement>('#note-text');
  void emit('ui.submitted', { text: input.value });
  input.value = '';
});
select.addEventListener('change', () => void start());
void start();
