#!/usr/bin/env node
// The `torpor` executable: the CLI is TypeScript, run through tsx (a dependency) without a build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
process.exitCode = await main(process.argv);
