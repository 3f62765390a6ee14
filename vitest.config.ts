import { readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// One vitest project per workspace package, named after the package, so
// `vitest run --project @virtio-ts/virtqueue` selects one. Tests import sibling
// packages through the "@virtio-ts/source" export condition and so run from
// source without a build.
const workspaceDirs = ['packages', 'apps'].flatMap((group) =>
  existsSync(group)
    ? readdirSync(group)
        .map((name) => join(group, name))
        .filter((dir) => existsSync(join(dir, 'package.json')))
    : [],
);

const conditions = ['@virtio-ts/source', 'import', 'module', 'node', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['@virtio-ts/source'] } },
  test: {
    // Property tests run hundreds of cases; on a loaded 2-core CI machine the
    // 5 s default is too tight. Guest tests set their own, longer limits.
    testTimeout: 60_000,
    projects: workspaceDirs.map((dir) => ({
      extends: true,
      test: {
        name: (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string }).name,
        root: dir,
        include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      },
    })),
  },
});
