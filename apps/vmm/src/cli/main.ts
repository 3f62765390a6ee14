#!/usr/bin/env node
import { runVmmCli } from './run.js';

// `virtio-ts vmm run ...` reaches here as `vmm run ...`; the package's own bin as `run ...`.
const argv = process.argv.slice(2);
if (argv[0] === 'vmm') argv.shift();
process.exitCode = await runVmmCli(argv);
process.exit();
