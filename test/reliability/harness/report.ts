import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './paths.js';
import type { Sizes } from './sizes.js';

/**
 * The reliability report: bench/results/reliability.json plus a short
 * Markdown page. Each part of the suite records its own section (test files
 * run in parallel workers, so the read-modify-write is done under a lock
 * directory) and leaves every other section as it is, so a campaign run on
 * its own (the full power-cut run) updates its figures beside the others.
 * Each section says which size of run produced it; a CI-sized result does
 * not replace a full one of the same section (the committed report keeps
 * the larger campaign). The Markdown is regenerated from the whole JSON
 * every time.
 */

type Size = 'ci' | 'full';

interface PowerCutCompaction {
  step: string;
  groupsBefore: number;
  groupsAfter: number;
  boundaries: number;
  cuts: number;
}

export interface Section {
  /** Lost acknowledged writes found by this part (must be 0). */
  lostAcknowledgedWrites?: number;
  /** Wrong results (a search or read that succeeded with the wrong answer; must be 0). */
  wrongResults?: number;
  [key: string]: unknown;
}

type Recorded = Section & { recordedAt: string; seed?: number; size?: Size };

interface ReportFile {
  generatedAt: string;
  /** The size of every section, or 'mixed'. */
  size: Size | 'mixed';
  sections: Record<string, Recorded>;
  totals?: { lostAcknowledgedWrites: number; wrongResults: number };
}

const defaultResultsDir = (): string => join(repoRoot(), 'bench', 'results');

async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.reliability.lock');
  for (let i = 0; ; i++) {
    try {
      await fs.mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || i > 600) throw err;
      // A lock older than a minute was left by a killed run.
      const st = await fs.stat(lock).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 60_000) await fs.rm(lock, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}

/**
 * Records one section of the report and rewrites the JSON and Markdown
 * files (in `dir`, bench/results by default); the other sections are kept.
 * Returns whether the section was written (false: a CI-sized result beside
 * a full one, which is kept).
 */
export async function recordSection(
  name: string,
  data: object,
  s: Pick<Sizes, 'full' | 'seed'>,
  dir = defaultResultsDir(),
): Promise<boolean> {
  await fs.mkdir(dir, { recursive: true });
  return withLock(dir, async () => {
    const jsonPath = join(dir, 'reliability.json');
    let file: ReportFile | undefined;
    try {
      file = JSON.parse(await fs.readFile(jsonPath, 'utf8')) as ReportFile;
    } catch {
      file = undefined;
    }
    file ??= { generatedAt: '', size: 'ci', sections: {} };
    // Sections written before each named its size carry the file's.
    for (const sec of Object.values(file.sections)) sec.size ??= file.size === 'full' ? 'full' : 'ci';
    const size: Size = s.full ? 'full' : 'ci';
    if (size === 'ci' && file.sections[name]?.size === 'full') return false;
    file.generatedAt = new Date().toISOString();
    file.sections[name] = { ...(data as Section), recordedAt: file.generatedAt, seed: s.seed, size };
    const sizes = new Set(Object.values(file.sections).map((sec) => sec.size));
    file.size = sizes.size === 1 ? size : 'mixed';
    let lost = 0;
    let wrong = 0;
    for (const sec of Object.values(file.sections)) {
      lost += sec.lostAcknowledgedWrites ?? 0;
      wrong += sec.wrongResults ?? 0;
    }
    file.totals = { lostAcknowledgedWrites: lost, wrongResults: wrong };
    await fs.writeFile(jsonPath, `${JSON.stringify(file, null, 2)}\n`);
    await fs.writeFile(join(dir, 'reliability.md'), renderMarkdown(file));
    return true;
  });
}

const RUN_NAME: Record<Size, string> = { full: 'full run', ci: 'CI-sized run' };

/** The heading of a section, naming the run it came from. */
function heading(title: string, sec: Recorded | undefined): string {
  return `## ${title} (${RUN_NAME[sec?.size ?? 'ci']})`;
}

function renderMarkdown(file: ReportFile): string {
  const lines: string[] = [
    '# vectorseal reliability report',
    '',
    `Last updated ${file.generatedAt}. Each section names the run it came from ` +
      '(the full run: `npm run reliability`, or a campaign of it run alone with `VECTORSEAL_RELIABILITY=full`; ' +
      'the CI-sized run: `npm test`) and its seed, so it can be replayed (`VECTORSEAL_RELIABILITY_SEED`).',
    '',
    `**Lost acknowledged writes: ${file.totals?.lostAcknowledgedWrites ?? 0}. Wrong results: ${file.totals?.wrongResults ?? 0}.**`,
    '',
  ];
  const sec = file.sections;
  const crash = sec['crash'] as Record<string, unknown> | undefined;
  if (crash) {
    const mode = crash['byMode'] as { point: { killed: number; survived: number }; timer: { killed: number; survived: number } };
    lines.push(
      heading('Crash safety (SIGKILL)', sec['crash']),
      '',
      '| kill points | survived | at named crash points | at random moments | writers that ran out first | ' +
        'acknowledged ops | in flight at kill (found applied) | lost acked writes | torn batches | wrong ' +
        'results | keys lost | not writable |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${crash['killPoints']} | ${crash['survived']} | ${mode.point.killed} (${mode.point.survived} ok) ` +
        `| ${mode.timer.killed} (${mode.timer.survived} ok) ` +
        `| ${crash['notReached']} | ${crash['acknowledgedOps']} | ${crash['inflightAtKill']} (` +
        `${crash['inflightFoundApplied']}) | ${crash['lostAcknowledgedWrites']} | ${crash['tornBatches']} | ` +
        `${crash['wrongResults']} | ${crash['keysLost']} | ${crash['notWritable']} |`,
      '',
      `Seed ${crash['seed']}, ${crash['durationMs']} ms. Named points killed at: ${Object.entries(
        crash['byPoint'] as Record<string, { killed: number }>,
      )
        .filter(([p, t]) => p !== 'timer' && t.killed > 0)
        .map(([p, t]) => `${p} ×${t.killed}`)
        .join(', ')}.`,
      '',
    );
  }
  const cut = sec['power-cut'] as Record<string, unknown> | undefined;
  if (cut) {
    lines.push(
      heading('Power loss (simulated power cuts)', sec['power-cut']),
      '',
      'Through the fault-injecting file layer (src/util/fault-file-layer.ts): ' +
        'unsynced data dropped or the last unsynced write torn at a sector boundary, ' +
        'directory changes not made durable by a directory fsync undone; reopened with the real code.',
      '',
      '| power cuts | at every k-th boundary | at random boundaries | boundaries in the run | acknowledged ' +
        'records checked | lost acked writes | torn batches | keys lost | unopenable | not writable | audit ' +
        'broken | backups broken |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      `| ${cut['cuts']} | ${cut['everyBoundary']} | ${cut['random']} | ${cut['boundaries']} | ` +
        `${cut['acknowledgedRecords']} | ${cut['lostAcknowledgedWrites']} | ${cut['tornBatches']} | ` +
        `${cut['keysLost']} | ${cut['unopenable']} | ${cut['notWritable']} | ${cut['auditBroken']} | ` +
        `${cut['backupsBroken']} |`,
      '',
      `Seed ${cut['seed']}, ${cut['durationMs']} ms. Operations: ${(cut['operations'] as string[] | undefined)?.join(', ') ?? ''}.`,
      '',
    );
    const bc = cut['backgroundCompaction'] as PowerCutCompaction | undefined;
    if (bc) {
      lines.push(
        `Background compaction ("${bc.step}"): the flush takes the collection to ${bc.groupsBefore} ` +
          "segment groups, over the run's limit; " +
          `the merge it starts leaves ${bc.groupsAfter}. ${bc.cuts} cuts landed in that step's ${bc.boundaries} boundaries.`,
        '',
      );
    }
  }
  type Listed = { case: string; reason: string }[];
  const tamper = sec['tamper'] as
    | {
        byKind?: Record<string, { tried: number; detected: number; harmless: number }>;
        accepted?: Listed;
        documentedLimits?: Listed;
        findings?: Listed;
      }
    | undefined;
  if (tamper?.byKind) {
    lines.push(
      heading('Tamper matrix', sec['tamper']),
      '',
      '| file kind | cases | detected (typed error naming the file) | accepted, harmless |',
      '| --- | ---: | ---: | ---: |',
    );
    for (const [kind, t] of Object.entries(tamper.byKind)) lines.push(`| ${kind} | ${t.tried} | ${t.detected} | ${t.harmless} |`);
    lines.push('');
    const list = (title: string, items: Listed | undefined): void => {
      if (!items?.length) return;
      lines.push(title, '');
      // One line per distinct case name and reason.
      const seen = new Set<string>();
      for (const a of items) {
        const line = `- ${a.case}: ${a.reason}`;
        if (!seen.has(line)) lines.push(line);
        seen.add(line);
      }
      lines.push('');
    };
    list('Accepted, harmless (same data):', tamper.accepted);
    list('Undetectable by design, not harmless (documented limits):', tamper.documentedLimits);
    list('Detectable, not detected (reported, not fixed):', tamper.findings);
  }
  const hostile = Object.entries(sec).filter(([k]) => k.startsWith('hostile'));
  if (hostile.length > 0) {
    // Each surface is its own section, so each row names its run.
    lines.push(
      '## Hostile input',
      '',
      '| surface | run | inputs tried | typed rejections | accepted | untyped / crashes | damage |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const [k, h] of hostile) {
      lines.push(
        `| ${k.slice('hostile-'.length)} | ${RUN_NAME[h.size ?? 'ci']} | ${h['tried']} | ${h['rejected']} | ` +
          `${h['accepted']} | ${h['untyped']} | ${h['damaged'] ?? 0} |`,
      );
    }
    lines.push('');
    const kms = sec['hostile-kms'];
    if (kms) {
      // The key service's surface: every request SigV4-signed so that it reaches the parsers and handlers.
      lines.push(
        `Key service: ${kms['handPicked']} hand-picked and ${kms['generated']} fast-check requests, ` +
          'each answered 4xx with {"__type","message"}; ' +
          `${kms['livenessChecks']} valid requests in between all succeeded; ` +
          'stored keys and ciphertexts checked at the end and after a restart. ' +
          `Rejections by exception: ${Object.entries((kms['byType'] ?? {}) as Record<string, number>)
            .map(([t, n]) => `${t} ${n}`)
            .join(', ')}.`,
        '',
      );
    }
  }
  for (const key of ['concurrency', 'disk-full']) {
    const s = sec[key];
    if (!s) continue;
    lines.push(heading(key === 'disk-full' ? 'Resource faults (full disk)' : 'Concurrency', s), '');
    for (const [k, v] of Object.entries(s)) {
      if (k === 'recordedAt' || k === 'seed' || k === 'size') continue;
      const text =
        typeof v === 'object' && v !== null
          ? Object.entries(v as Record<string, unknown>)
              .map(([a, b]) => `${a} ${typeof b === 'object' ? JSON.stringify(b) : String(b)}`)
              .join(', ')
          : String(v);
      lines.push(`- ${k}: ${text}`);
    }
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
