import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Search attributes every Torpor workflow sets, so the Temporal UI and `list` can filter by them. */
export const TorporHash = defineSearchAttributeKey('TorporHash', SearchAttributeType.KEYWORD);
export const TorporNode = defineSearchAttributeKey('TorporNode', SearchAttributeType.KEYWORD);
export const TorporPhase = defineSearchAttributeKey('TorporPhase', SearchAttributeType.KEYWORD);
/** The Kubernetes namespace of the workload; "local" for the local runtime. */
export const TorporNamespace = defineSearchAttributeKey('TorporNamespace', SearchAttributeType.KEYWORD);

export const TORPOR_SEARCH_ATTRIBUTES = [TorporHash, TorporNode, TorporPhase, TorporNamespace];
