/**
 * Processors for `batchline loadtest`, for a server to run:
 *
 *   batchline serve --processors node_modules/batchline/dist/cli/loadtest-processors.js
 *
 * Both add the item's `amount` to the batch's `amount` aggregate, so the load test can check
 * each batch's total to the cent. `loadtest.noop` does nothing else (`--fast`);
 * `loadtest.work` also waits 1-5 ms, like a call to another service.
 */

import type { ItemContext } from '../engine/item-context.js';

/** An item the load test submits. */
export interface LoadItem {
  i: number;
  amount: string;
}

export default {
  'loadtest.noop': (item: LoadItem, ctx: ItemContext) => {
    ctx.aggregate('amount', item.amount);
  },
  'loadtest.work': async (item: LoadItem, ctx: ItemContext) => {
    await new Promise((resolve) => setTimeout(resolve, 1 + (item.i % 5)));
    ctx.aggregate('amount', item.amount);
  },
};
