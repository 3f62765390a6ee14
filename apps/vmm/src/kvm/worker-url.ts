import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Starts the worker module `name` (a sibling of this file). From the built
 * package that is plain `name.js`. From source (tests, benchmarks), Node
 * cannot load `name.ts` by itself, so a one-line bootstrap loads it through
 * tsx, the workspace's TypeScript loader.
 */
export function startWorker(name: string, workerData: unknown): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, here), { workerData });
  const tsx = join(dirname(createRequire(here).resolve('tsx/package.json')), 'dist/esm/api/index.mjs');
  const target = new URL(`./${name}.ts`, here).href;
  const bootstrap = `import(${JSON.stringify(pathToFileURL(tsx).href)}).then((api) => api.tsImport(${JSON.stringify(target)}, ${JSON.stringify(here)}))`;
  return new Worker(bootstrap, { eval: true, workerData });
}
