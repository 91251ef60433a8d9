// What a user writes: connect, subscribe, emit, and see the event come back.
import { EventChannel } from 'eventwire';

type Events = {
  'consumer.ping': { n: number; from: string };
};

const result = document.getElementById('result')!;
const params = new URLSearchParams(location.search);
const transport = (params.get('transport') ?? 'auto') as 'auto' | 'websocket' | 'sse';
// `?share`: the same round trip through the share/persist layer, which the
// build makes a chunk of its own, loaded only then.
const share = params.has('share');

try {
  const channel = await EventChannel.connect<Events>({ url: location.origin, transport, topics: ['consumer.*'], share });
  const received = new Promise<number>((resolve) => {
    channel.subscribe('consumer.ping', (e) => resolve(e.data.n));
  });
  const receipt = await channel.emit('consumer.ping', { n: 42, from: 'vite' }, { correlationid: 'consumer-1' });
  const n = await received;
  result.textContent = `ok ${channel.transport} n=${n} seq=${receipt.seq}`;
  await channel.close();
} catch (e) {
  result.textContent = `error ${(e as { code?: string }).code ?? ''} ${String(e)}`;
}
