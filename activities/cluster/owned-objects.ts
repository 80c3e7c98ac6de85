import type { V1ObjectMeta } from '@kubernetes/client-node';
import { torporFailure } from '../../contract/failures.js';
import { kubeFailure, statusCode } from './kube-errors.js';
import { OWNER_ANNOTATION } from './manifests.js';

/** An object this workflow run created: its UID is what a later step and the compensation act on. */
export interface Created {
  namespace: string;
  uid: string;
}

/**
 * After a 409: the object of that name is adopted only when this run created it (a retry whose
 * first answer was lost); anyone else's, whatever labels it copies, is refused.
 */
export function adoptOwn(meta: V1ObjectMeta | undefined, owner: string, what: string, expected: Record<string, string>): string {
  const labels = meta?.labels ?? {};
  const mismatch = Object.entries(expected).some(([key, value]) => labels[key] !== value);
  if (mismatch || !owner || meta?.annotations?.[OWNER_ANNOTATION] !== owner) {
    throw torporFailure('TargetNotAllowed', `${what} exists but was not created by this Torpor run; it is left as it is`);
  }
  return meta?.uid ?? '';
}

export interface OwnedDelete {
  name: string;
  namespace: string;
  /** The UID the create returned; without it (the create's answer never came) only an object this run annotated is deleted. */
  uid?: string | undefined;
  owner?: string | undefined;
}

/**
 * Deletes only the object this run created: by UID (`preconditions.uid`), so an object someone else
 * made under the same name answers 409 and stays. Already gone is success.
 */
export async function deleteOwned(
  target: OwnedDelete,
  read: () => Promise<{ metadata?: V1ObjectMeta }>,
  remove: (uid: string) => Promise<unknown>,
  what: string,
): Promise<{ deleted: boolean }> {
  try {
    let uid = target.uid;
    if (!uid) {
      const meta = (await read()).metadata;
      if (!target.owner || meta?.annotations?.[OWNER_ANNOTATION] !== target.owner) return { deleted: false };
      uid = meta?.uid ?? '';
    }
    await remove(uid);
    return { deleted: true };
  } catch (err) {
    if (statusCode(err) === 404) return { deleted: false };
    if (statusCode(err) === 409) return { deleted: false };
    throw kubeFailure(err, `delete ${what}`);
  }
}
