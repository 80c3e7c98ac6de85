import { createHash } from 'node:crypto';
import type { WorkflowHandle } from '@temporalio/client';
import type { TypedSearchAttributes } from '@temporalio/common';
import { TorporNode } from '../contract/search-attributes.js';
import type { CheckpointRequest } from '../contract/spec.js';
import { canonicalJson } from '../contract/spec-hash.js';
import { TorporError } from './errors.js';

/** What a checkpoint run was started for, kept in its memo (payload-encrypted like the input). */
export interface CheckpointIdentity {
  node: string;
  runtime: string;
  /** sha256 of the workload spec (canonical JSON): equal specs, equal digests. */
  workload: string;
}

export const IDENTITY_MEMO = 'torporCheckpoint';

export function checkpointIdentity(request: CheckpointRequest): CheckpointIdentity {
  const workload = createHash('sha256')
    .update(canonicalJson({ workload: request.workload, kubernetes: request.kubernetes ?? null }))
    .digest('hex');
  // No node: wherever the scheduler places the Job (kubernetes); such a run is joined only by another without one.
  return { node: request.node ?? '', runtime: request.runtime, workload };
}

/**
 * One workflow ID per hash means a second request joins the first run. That is only right for the
 * same node, runtime and workload: anything else is refused, and the running checkpoint is left alone.
 */
export async function assertSameCheckpoint(handle: WorkflowHandle, request: CheckpointRequest): Promise<void> {
  const { workflowId } = handle;
  const description = await handle.describe();
  const running = description.memo?.[IDENTITY_MEMO] as CheckpointIdentity | undefined;
  const wanted = checkpointIdentity(request);
  const mismatch = running
    ? (['node', 'runtime', 'workload'] as const).filter((k) => running[k] !== wanted[k])
    : legacyMismatch(description.typedSearchAttributes, wanted);
  if (mismatch.length === 0) return;
  const seen = running ? `node ${running.node}, runtime ${running.runtime}` : 'another node';
  throw new TorporError(
    'CheckpointConflict',
    `checkpoint ${request.hash} is already running (${seen}) with a different ${mismatch.join(', ')}; not joined`,
    workflowId,
  );
}

// Runs started before the memo: compare the node they tagged themselves with, when they already have.
function legacyMismatch(attributes: TypedSearchAttributes, wanted: CheckpointIdentity): string[] {
  const node = attributes.get(TorporNode);
  return node !== undefined && node !== wanted.node ? ['node'] : [];
}
