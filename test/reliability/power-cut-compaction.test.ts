import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BACKGROUND_COMPACTION, traceScript } from './harness/power-cut.js';

const root = mkdtempSync(join(tmpdir(), 'vs-rel-powercut-compaction-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('power loss: the scripted run includes a background compaction', () => {
  const name = 'its flush starts a merge that commits a new layout and removes the merged groups, all at boundaries of the run';
  it(name, { timeout: 120_000 }, async () => {
    const t = await traceScript(root);
    expect(t.error).toBeUndefined();
    // The merge ran: the collection has fewer groups once idle than the flush left it with.
    expect(t.ack.compactions).toEqual([{ collection: 'a', before: 3, after: 2 }]);
    const step = t.steps.find((s) => s.label === BACKGROUND_COMPACTION);
    if (step === undefined) throw new Error(`no step "${BACKGROUND_COMPACTION}"`);
    const ops = t.labels.slice(step.from - 1, step.to);
    // Two manifest commits in the step: the flush's, then the merge's.
    const commits = ops.flatMap((o, i) => (/^rename \S+\/\.MANIFEST\.tmp -> \S+\/MANIFEST$/.test(o) ? [i] : []));
    expect(commits).toHaveLength(2);
    const afterFlush = ops.slice((commits[0] ?? 0) + 1);
    // The merge writes one new group (its three segment files) before its commit...
    const written = new Set(afterFlush.flatMap((o) => /^rename \S+\/seg\/\.(\d+)\.\w+\.vseg\.tmp -> /.exec(o)?.[1] ?? []));
    expect(written.size).toBe(1);
    // ...and removes the files of the two groups it merged after it (retired with no grace period in the run).
    const removed = new Set(ops.slice((commits[1] ?? 0) + 1).flatMap((o) => /^unlink \S+\/seg\/(\d+)\.\w+\.vseg$/.exec(o)?.[1] ?? []));
    expect(removed.size).toBe(2);
    for (const id of written) expect(removed.has(id)).toBe(false);
  });
});
