import { setCurrentDetails, upsertSearchAttributes } from '@temporalio/workflow';
import { TorporHash, TorporNamespace, TorporNode, TorporPhase } from '../contract/search-attributes.js';

/**
 * Search attributes and UI details for the callers' workflows (refresh, gc, store operations), whose
 * phases are their own and not the checkpoint's `Phase`s.
 */
export function tagExecution(node: string, hash?: string): void {
  upsertSearchAttributes([
    { key: TorporNode, value: node },
    { key: TorporNamespace, value: 'local' },
    ...(hash === undefined ? [] : [{ key: TorporHash, value: hash }]),
  ]);
}

export function enterPhase(phase: string): void {
  upsertSearchAttributes([{ key: TorporPhase, value: phase }]);
  setCurrentDetails(`**${phase}**`);
}
