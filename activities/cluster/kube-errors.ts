import { ApiException } from '@kubernetes/client-node';
import { torporFailure } from '../../contract/failures.js';

/** What the API server said, in words. */
export function apiMessage(err: ApiException<unknown>): string {
  const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
  return (body as { message?: string } | undefined)?.message ?? String(err.body ?? err.message);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

export function statusCode(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/**
 * Turns an API refusal that retrying cannot change into a typed failure: 403 (RBAC) and 422/400
 * (validation). Anything else (5xx, 429, network) is rethrown for Temporal to retry.
 */
export function kubeFailure(err: unknown, action: string): unknown {
  if (!(err instanceof ApiException)) return err;
  if (err.code === 403) return torporFailure('Forbidden', `Kubernetes refused to ${action}: ${apiMessage(err)}`);
  if (err.code === 422 || err.code === 400) return torporFailure('InvalidSpec', `Kubernetes rejected ${action}: ${apiMessage(err)}`);
  return err;
}
