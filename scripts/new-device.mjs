#!/usr/bin/env node
// Creates a device package from scripts/device-template: packages/virtio-<name>,
// with a working device, its conformance test and a changeset.
//
//   node scripts/new-device.mjs <name> --device-id <n> [--section <5.x>] [--root <monorepo>]
//
// Then: pnpm install, add the package to the root tsconfig.json references,
// and `pnpm vitest run --project @virtio-ts/virtio-<name>`.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TEMPLATE = join(dirname(fileURLToPath(import.meta.url)), 'device-template');

function fail(message) {
  console.error(`new-device: ${message}`);
  process.exit(1);
}

function parse() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { 'device-id': { type: 'string' }, section: { type: 'string' }, root: { type: 'string' } },
    });
  } catch (error) {
    fail(`${error.message}; usage: node scripts/new-device.mjs <name> --device-id <n> [--section <5.x>] [--root <dir>]`);
  }
  const { positionals, values } = parsed;
  const name = positionals[0];
  if (positionals.length !== 1 || !/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) {
    fail('give one device name in lower case, words joined by "-" (e.g. "rng" or "input-touch")');
  }
  const deviceId = Number(values['device-id']);
  if (values['device-id'] === undefined || !Number.isInteger(deviceId) || deviceId < 1 || deviceId > 0xffff) {
    fail('give the device ID from spec 5 with --device-id <n> (an integer from 1 to 65535)');
  }
  const section = values.section;
  if (section !== undefined && !/^5(\.\d+)+$/.test(section)) fail('--section is a spec section under 5, e.g. 5.4');
  return { name, deviceId, section, root: values.root ?? process.cwd() };
}

/** Copies the template into `to`, replacing the placeholders in every file. */
function copy(from, to, tokens) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory()) {
      copy(source, target, tokens);
      continue;
    }
    let text = readFileSync(source, 'utf8');
    for (const [token, value] of tokens) text = text.replaceAll(token, value);
    writeFileSync(target, text);
  }
}

const { name, deviceId, section, root } = parse();
if (!existsSync(join(root, 'pnpm-workspace.yaml')) && !existsSync(join(root, 'tsconfig.base.json'))) {
  fail(`${root} is not the virtio-ts monorepo root; run from it or pass --root`);
}
const packageDir = join(root, 'packages', `virtio-${name}`);
if (existsSync(packageDir)) fail(`${relative(root, packageDir)} already exists; choose another name or remove it`);

const words = name.split('-');
const tokens = [
  ['__SPEC__', section === undefined ? 'spec 5' : `spec ${section}`],
  ['__DEVICE_ID__', String(deviceId)],
  ['__NAME__', words.join('_').toUpperCase()],
  ['__Name__', words.map((w) => w[0].toUpperCase() + w.slice(1)).join('')],
  ['__name__', name],
];
copy(TEMPLATE, packageDir, tokens);

const changesets = join(root, '.changeset');
if (existsSync(changesets)) {
  writeFileSync(
    join(changesets, `virtio-${name}.md`),
    `---\n"@virtio-ts/virtio-${name}": minor\n---\n\nFirst release: the virtio ${name} device.\n`,
  );
}

console.log(`created ${relative(root, packageDir)} (@virtio-ts/virtio-${name}, device ID ${deviceId})
next:
  pnpm install
  add { "path": "packages/virtio-${name}" } to the root tsconfig.json "references"
  pnpm vitest run --project @virtio-ts/virtio-${name}
  then work through docs/adding-a-device.md`);
