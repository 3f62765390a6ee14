import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** Every module reachable from `entry` through relative imports, with the bare specifiers each imports. */
function importGraph(entry: string): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  const visit = (file: string): void => {
    if (graph.has(file)) return;
    const text = readFileSync(file, 'utf8');
    const specifiers = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1] as string);
    graph.set(file, specifiers.filter((s) => !s.startsWith('.')));
    for (const s of specifiers.filter((s) => s.startsWith('.'))) visit(join(dirname(file), s.replace(/\.js$/, '.ts')));
  };
  visit(entry);
  return graph;
}

describe('package entry points', () => {
  it('the main export reaches no node: module and no FFI, so it runs in browsers', () => {
    const graph = importGraph(join(src, 'index.ts'));
    expect(graph.size).toBeGreaterThan(5);
    for (const [file, imports] of graph) {
      for (const s of imports) expect(s.startsWith('node:') || s === 'koffi' || s.includes('/node'), `${file} imports ${s}`).toBe(false);
    }
  });

  it('the ./node export is where node: modules and koffi are used', () => {
    const imports = [...importGraph(join(src, 'node/index.ts')).values()].flat();
    expect(imports).toContain('node:fs');
    expect(imports).toContain('koffi');
  });
});
