import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { Option } from 'commander';
import { UsageError } from './commands/checkpoints.js';

/** `--request <file|->`: a whole request as JSON, from a file or stdin; conflicts with the flags that build one. */
export function requestOption(what: string, conflicting: string[]): Option {
  return new Option(
    '--request <file|->',
    `the whole ${what} as JSON, from a file or - for stdin (instead of the flags and arguments)`,
  ).conflicts(conflicting);
}

/**
 * Reads a request document. Only the JSON syntax is checked here: the contract's parser, which the
 * client runs before anything goes over the network, names every bad field (InvalidSpec, exit 2).
 */
export async function readRequest(source: string): Promise<Record<string, unknown>> {
  const from = source === '-' ? 'stdin' : source;
  let body: string;
  try {
    body = source === '-' ? await text(process.stdin) : await readFile(source, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the request from ${from}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (err) {
    throw new UsageError(`the request in ${from} is not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(
      `the request in ${from} must be a JSON object (a whole request), not ${Array.isArray(value) ? 'an array' : typeof value}`,
    );
  }
  return value as Record<string, unknown>;
}

/** The request's node, or --node / NODE_NAME when given and the file names none (never this host's name by default). */
export function withNode(request: Record<string, unknown>, node: string | undefined): Record<string, unknown> {
  return request.node === undefined && node !== undefined ? { ...request, node } : request;
}
