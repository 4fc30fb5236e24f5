import { describe, expect, it } from 'vitest';
import { SerialQueue } from '../../src/util/serial-queue.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('SerialQueue', () => {
  it('runs tasks one at a time, in queue order, even when an earlier one is slower', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    let running = 0;
    const task = (name: string, ticks: number) => async () => {
      running++;
      expect(running).toBe(1);
      log.push(`start ${name}`);
      for (let i = 0; i < ticks; i++) await tick();
      log.push(`end ${name}`);
      running--;
      return name;
    };
    const results = await Promise.all([q.run(task('a', 5)), q.run(task('b', 0)), q.run(task('c', 2))]);
    expect(results).toEqual(['a', 'b', 'c']);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  it('gives a failure to its own caller only and moves on; a synchronous throw counts as a failure', async () => {
    const q = new SerialQueue();
    const boom = new Error('boom');
    const failed = q.run(async () => {
      throw boom;
    });
    const threw = q.run(() => {
      throw new TypeError('sync');
    });
    const after = q.run(() => 42);
    await expect(failed).rejects.toBe(boom);
    await expect(threw).rejects.toThrow(TypeError);
    await expect(after).resolves.toBe(42);
  });

  it('idle() waits for everything queued so far and never rejects', async () => {
    const q = new SerialQueue();
    let done = false;
    void q.run(async () => {
      await tick();
      done = true;
    });
    q.run(() => Promise.reject(new Error('ignored by idle'))).catch(() => undefined);
    await q.idle();
    expect(done).toBe(true);
  });
});
