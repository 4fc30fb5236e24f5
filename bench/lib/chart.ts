import type { Op } from '../pages.js';
import { contenderLabel } from './markdown.js';
import { SUITE_CONTENDERS, type PageSuiteResult, type SuiteContender } from './pages-suite.js';

/**
 * bench/results/throughput.svg: grouped bars of MB/s by page size for every
 * contender, one panel for seal and one for open, sharing a y axis so that
 * the two panels compare directly. Plain SVG, no dependency.
 */
const COLORS: Record<SuiteContender, string> = {
  openssl: '#4d4d4d',
  native: '#1f77b4',
  'native-batch': '#9467bd',
  'native-pool': '#17becf',
  node: '#2ca02c',
  cipheriv: '#ff7f0e',
  'aws-esdk': '#d62728',
};

const W = 1100;
const H = 520;
const TOP = 118;
const BOTTOM = 70;
const LEFT = 80;
const GAP = 50;
const RIGHT = 20;

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A "nice" axis maximum and step (1, 2 or 5 × 10^k) for about five ticks. */
function axis(max: number): { top: number; step: number } {
  const raw = Math.max(1, max) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

export function renderChart(pages: PageSuiteResult, subtitle: string): string {
  const sizes = [...new Set(pages.rows.map((r) => r.pageSize))];
  const present = SUITE_CONTENDERS.filter((c) => pages.rows.some((r) => r.mbps[c] !== undefined));
  const max = Math.max(...pages.rows.flatMap((r) => present.map((c) => r.mbps[c] ?? 0)));
  const { top, step } = axis(max);
  const panelW = (W - LEFT - RIGHT - GAP) / 2;
  const plotH = H - TOP - BOTTOM;
  const y = (v: number): number => TOP + plotH - (v / top) * plotH;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      'font-family="Helvetica, Arial, sans-serif" font-size="12">',
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="17" font-weight="bold">AES-256-GCM page ` +
      'throughput by page size (MB/s of plaintext, higher is better)</text>',
    `<text x="${W / 2}" y="44" text-anchor="middle" font-size="12" fill="#555">${esc(subtitle)}</text>`,
  ];
  // Legend, wrapped into rows that fit the width.
  let lx = LEFT;
  let ly = 56;
  for (const c of present) {
    const w = 30 + contenderLabel(c).length * 6.6;
    if (lx + w > W - RIGHT) {
      lx = LEFT;
      ly += 20;
    }
    parts.push(
      `<rect x="${lx}" y="${ly}" width="12" height="12" fill="${COLORS[c]}"/>`,
      `<text x="${lx + 17}" y="${ly + 11}">${esc(contenderLabel(c))}</text>`,
    );
    lx += w;
  }
  (['seal', 'open'] as Op[]).forEach((op, p) => {
    const x0 = LEFT + p * (panelW + GAP);
    parts.push(
      `<text x="${x0 + panelW / 2}" y="${TOP - 6}" text-anchor="middle" font-size="14" font-weight="bold">` +
        `${op === 'seal' ? 'seal (encrypt)' : 'open (decrypt)'}</text>`,
    );
    for (let v = 0; v <= top + 1e-9; v += step) {
      parts.push(`<line x1="${x0}" x2="${x0 + panelW}" y1="${y(v)}" y2="${y(v)}" stroke="#e3e3e3"/>`);
      parts.push(`<text x="${x0 - 6}" y="${y(v) + 4}" text-anchor="end" fill="#444">${v.toFixed(0)}</text>`);
    }
    parts.push(
      `<line x1="${x0}" x2="${x0}" y1="${TOP}" y2="${TOP + plotH}" stroke="#333"/>`,
      `<line x1="${x0}" x2="${x0 + panelW}" y1="${TOP + plotH}" y2="${TOP + plotH}" stroke="#333"/>`,
    );
    const groupW = panelW / sizes.length;
    const barW = (groupW * 0.8) / present.length;
    sizes.forEach((size, g) => {
      const row = pages.rows.find((r) => r.pageSize === size && r.op === op);
      const gx = x0 + g * groupW + groupW * 0.1;
      present.forEach((c, i) => {
        const v = row?.mbps[c];
        if (v === undefined) return;
        const bx = gx + i * barW;
        parts.push(
          `<rect x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="` +
            `${(TOP + plotH - y(v)).toFixed(1)}" fill="${COLORS[c]}"><title>` +
            `${esc(`${contenderLabel(c)}, ${size / 1024} KiB ${op}: ${v.toFixed(0)} MB/s`)}</title></rect>`,
        );
        parts.push(
          `<text x="${(bx + barW / 2 - 1).toFixed(1)}" y="${(y(v) - 4).toFixed(1)}" text-anchor="middle" ` +
            `font-size="9" fill="#333">${v.toFixed(0)}</text>`,
        );
      });
      parts.push(
        `<text x="${x0 + g * groupW + groupW / 2}" y="${TOP + plotH + 20}" text-anchor="middle" font-size="13">${size / 1024} KiB</text>`,
      );
    });
    parts.push(`<text x="${x0 + panelW / 2}" y="${TOP + plotH + 42}" text-anchor="middle" fill="#444">page size</text>`);
  });
  parts.push(
    `<text transform="translate(22 ${TOP + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">MB/s (10^6 bytes per second)</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
