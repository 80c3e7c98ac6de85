import { createHash } from 'node:crypto';
import { HASH_PATTERN, WORKLOAD_NAME_PATTERN } from './spec.js';
import type { SpecHashInputs } from './types.js';

/**
 * The spec hash: a checkpoint's name derived from everything that makes its memory what it is, so
 * an unchanged spec finds its checkpoint again and any change produces a new one.
 *
 *   hash = `<name>-<first 16 hex of sha256(canonical JSON of the inputs)>`
 *
 * Inputs (`SpecHashInputs`, derived on the node by the `deriveSpecHash` activity):
 * - `imageDigest`: the container image's digest (kubernetes runtime); null for the local runtime;
 * - `files`: local runtime: the sha256 of the program (found on PATH, symlinks followed) and of every
 *   argument that names a regular file (scripts, configs, weights), relative paths from `cwd`;
 * - `command`, `cwd`, and `env`: all of `workload.env`, or the subset the request names in `hashEnv`
 *   (leave out per-run values such as log paths);
 * - `gpu`: the node's GPU models (sorted) and NVIDIA driver version (none: `[]` and null);
 * - `criuVersion` and `runtime`.
 * The canonical JSON sorts object keys at every level, so key order never changes the hash; arrays
 * keep their order (argument order matters) except `files` and `gpu.models`, which are sorted.
 * `formatVersion` changes, and with it every hash, if this recipe ever changes.
 * Retention groups checkpoints by the name before the last dash, so it only ever touches hashes of
 * this shape; a hash chosen by hand (say `llama-8b-3f2a`) is never deleted by retention.
 */
export function specHash(inputs: SpecHashInputs): string {
  if (!WORKLOAD_NAME_PATTERN.test(inputs.name)) throw new Error(`"${inputs.name}" is not a valid workload name`);
  const normalized: SpecHashInputs = {
    ...inputs,
    files: [...inputs.files].sort((a, b) => compare(a.path, b.path)),
    gpu: { models: [...inputs.gpu.models].sort(compare), driverVersion: inputs.gpu.driverVersion },
  };
  const digest = createHash('sha256').update(canonicalJson(normalized)).digest('hex');
  const hash = `${inputs.name}-${digest.slice(0, 16)}`;
  if (!HASH_PATTERN.test(hash)) throw new Error(`derived hash ${hash} does not match ${HASH_PATTERN}`);
  return hash;
}

/** JSON with object keys sorted at every level; `undefined` members are left out as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return Object.fromEntries(entries.sort(([a], [b]) => compare(a, b)).map(([k, v]) => [k, sortKeys(v)]));
}

/** Code-unit order, independent of the locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
