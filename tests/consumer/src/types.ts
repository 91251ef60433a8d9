// Compile-time checks of the typings: `tsc --noEmit --strict` must accept
// every line, including each `@ts-expect-error` (which fails if no error).
import { EventChannel, type EventEnvelope } from 'eventwire';

type Events = {
  'order.placed': { orderId: string; total: number };
  'order.shipped': { orderId: string; carrier: string };
  'ui.clicked': { target: string };
};

export async function checks(channel: EventChannel<Events>): Promise<void> {
  // Exact types give typed data.
  channel.subscribe('order.placed', (e) => {
    const total: number = e.data.total;
    const type: 'order.placed' = e.type;
    void total;
    void type;
  });
  // A pattern gives the union of the matching types.
  channel.subscribe('order.*', (e) => {
    if (e.type === 'order.shipped') {
      const carrier: string = e.data.carrier;
      void carrier;
    } else {
      const total: number = e.data.total;
      void total;
    }
  });
  // A pattern no known type matches gives unknown data.
  channel.subscribe('audit.>', (e) => {
    const d: unknown = e.data;
    void d;
    // @ts-expect-error data is unknown here
    void e.data.anything;
  });

  const receipt = await channel.emit('ui.clicked', { target: 'buy' }, { correlationid: 'c-1' });
  const seq: string = receipt.seq;
  void seq;

  // @ts-expect-error wrong payload: target must be a string
  await channel.emit('ui.clicked', { target: 42 });
  // @ts-expect-error unknown type
  await channel.emit('ui.unknown', { target: 'x' });
  // @ts-expect-error unknown exact type in subscribe
  channel.subscribe('order.cancelled', () => {});
  // @ts-expect-error wrong handler parameter: total is a number
  channel.subscribe('order.placed', (e: EventEnvelope<'order.placed', { total: string }>) => void e);

  const state: 'connecting' | 'open' | 'reconnecting' | 'closed' = channel.state;
  void state;
  const off = channel.onState((s, info) => {
    if (s === 'open' && info.recovered === false) {
      // refetch
    }
  });
  off();
  channel.onError((err) => {
    const code: string = err.code;
    void code;
  });

  // share and persist: options, the outcome of a restored emit, the tab's role.
  const shared = await EventChannel.connect<Events>({
    url: 'http://localhost:8080',
    share: true,
    persist: true,
    onRestoredEmit: (r) => {
      const id: string = r.id;
      const seq: string | undefined = r.receipt?.seq;
      const why: string | undefined = r.error?.code;
      void [id, seq, why];
    },
  });
  const role: 'leader' | 'follower' | false | undefined = shared.shared;
  void role;
  // @ts-expect-error share is a boolean
  await EventChannel.connect({ url: 'http://localhost:8080', share: 'yes' });
}
