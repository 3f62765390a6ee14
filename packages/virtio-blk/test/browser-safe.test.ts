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
    // Type-only imports are erased from the JavaScript, so they load nothing.
    const specifiers = [...text.matchAll(/^\s*(?:import|export)\s(?!type\s)[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1] as string);
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

  it('the ./node export is where node: modules are used; koffi, an optional peer dependency, is only loaded lazily', () => {
    const graph = importGraph(join(src, 'node/index.ts'));
    const imports = [...graph.values()].flat();
    expect(imports).toContain('node:fs');
    // A static import would make a missing koffi break loading the module.
    expect(imports).not.toContain('koffi');
    expect([...graph.keys()].some((file) => readFileSync(file, 'utf8').includes("await import('koffi')"))).toBe(true);
  });

  it('koffi is an optional peer dependency, not a dependency', () => {
    const manifest = JSON.parse(readFileSync(join(src, '../package.json'), 'utf8')) as Record<string, Record<string, unknown> | undefined>;
    expect(manifest.dependencies?.koffi).toBeUndefined();
    expect(manifest.peerDependencies?.koffi).toBeDefined();
    expect(manifest.peerDependenciesMeta?.koffi).toEqual({ optional: true });
  });
});
