// What a user writes: connect, subscribe, emit, and see the event come back.
import { EventChannel } from 'eventwire';

type Events = {
  'consumer.ping': { n: number; from: string };
};

const result = document.getElementById('result')!;
const transport = (new URLSearchParams(location.search).get('transport') ?? 'auto') as 'auto' | 'websocket' | 'sse';

try {
  const channel = await EventChannel.connect<Events>({ url: location.origin, transport, topics: ['consumer.*'] });
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
