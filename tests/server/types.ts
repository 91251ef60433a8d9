// Compile-time checks of the eventwire/server typings: `tsc -p tests/server`
// must accept every line, including each `@ts-expect-error` (which fails
// if there is no error). No DOM lib and no @types/node: the typings stand
// alone.
import { Eventwire, verifyWebhook, type EmitReceipt } from 'eventwire/server';

type Events = {
  'order.placed': { orderId: string; total: number };
  'order.shipped': { orderId: string; carrier: string };
  'ui.clicked': { target: string };
};

export async function checks(): Promise<void> {
  const ew = new Eventwire<Events>({ url: 'http://127.0.0.1:8080', token: () => 'key' });

  const receipt: EmitReceipt = await ew.publish('order.placed', { orderId: 'o-1', total: 12 }, { id: 'o-1' });
  void receipt.seq;
  // @ts-expect-error wrong payload: total must be a number
  await ew.publish('order.placed', { orderId: 'o-1', total: '12' });
  // @ts-expect-error unknown type
  await ew.publish('order.cancelled', { orderId: 'o-1' });
  // @ts-expect-error missing payload field
  await ew.publish('ui.clicked', {});

  // The group's patterns (create.topics) type the events.
  const c = ew.consume(
    'billing',
    async (e, { attempt }) => {
      const n: number = attempt;
      if (e.type === 'order.shipped') {
        const carrier: string = e.data.carrier;
        void carrier;
      } else {
        const total: number = e.data.total;
        void total;
      }
      void n;
    },
    { create: { topics: ['order.>'] }, concurrency: 4 },
  );
  await c.stop();
  ew.consume('exact', (e) => void e.data.total, { create: { topics: ['order.placed'] } });
  // @ts-expect-error order.placed has no carrier
  ew.consume('exact', (e) => void e.data.carrier, { create: { topics: ['order.placed'] } });
  // Without create, every event of the map may arrive.
  ew.consume('any', (e) => {
    if (e.type === 'ui.clicked') void e.data.target.toUpperCase();
  });
  // @ts-expect-error concurrency is a number
  ew.consume('g', () => {}, { concurrency: '4' });

  const ev = verifyWebhook<Events>('{}', { 'webhook-id': 'x' }, 'whsec_');
  if (ev.type === 'ui.clicked') {
    const target: string = ev.data.target;
    void target;
  }
  // @ts-expect-error the body is a string or bytes
  verifyWebhook(42, {}, 'whsec_');
  await ew.close();
}
