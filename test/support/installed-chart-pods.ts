import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Pod } from '@kubernetes/client-node';
import { temporal } from '@temporalio/proto';
import type { InstalledChart } from './installed-chart.js';
import { RELEASE_NS } from './installed-chart.js';

/** The Temporal identities of the chart's current workers (the SDK's default: `<pid>@<hostname>`). */
export interface ChartWorkers {
  /** The control pod's: its own PID namespace and hostname. */
  control: string;
  /** The agent pod's: on the host's PID namespace and network (so its hostname is the node's). */
  agent: string;
}

const ready = (pod: V1Pod) => pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

async function agentIdentity(env: InstalledChart, pod: V1Pod): Promise<string> {
  const id = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
  const tasks = (await env.node.ctr(['tasks', 'ls'])).stdout.split('\n');
  const pid = tasks.find((line) => id && line.startsWith(id))?.split(/\s+/)[1];
  if (!pid) throw new Error(`no containerd task for the agent pod ${pod.metadata?.name}`);
  return `${pid}@${os.hostname()}`;
}

/**
 * Waits until the release runs exactly one control pod and one agent pod, both Ready and both of
 * image tag `tag` (older pods gone), and returns their worker identities.
 */
export async function waitForRollout(env: InstalledChart, tag: string, timeoutMs = 180_000): Promise<ChartWorkers> {
  const deadline = Date.now() + timeoutMs;
  let seen: V1Pod[] = [];
  while (Date.now() < deadline) {
    seen = (await env.core.listNamespacedPod({ namespace: RELEASE_NS })).items;
    const of = (component: string) => seen.filter((p) => p.metadata?.labels?.['app.kubernetes.io/component'] === component);
    const [control, agent] = [of('control'), of('node-agent')];
    const current = (pods: V1Pod[]) =>
      pods.length === 1 &&
      !pods[0]?.metadata?.deletionTimestamp &&
      ready(pods[0] as V1Pod) &&
      pods[0]?.spec?.containers[0]?.image?.endsWith(`:${tag}`);
    if (current(control) && current(agent)) {
      return { control: `@${control[0]?.metadata?.name}`, agent: await agentIdentity(env, agent[0] as V1Pod) };
    }
    await sleep(1000);
  }
  const states = seen.map(
    (p) =>
      `${p.metadata?.name} ${p.spec?.containers[0]?.image} ${JSON.stringify(p.status?.containerStatuses?.[0]?.state ?? p.status?.conditions)}`,
  );
  const ds = (await env.apps.listNamespacedDaemonSet({ namespace: RELEASE_NS })).items.map((d) => JSON.stringify(d.status));
  states.push(...ds);
  const events = (await env.core.listNamespacedEvent({ namespace: RELEASE_NS })).items;
  states.push(...events.slice(-20).map((e) => `${e.involvedObject.name}: ${e.reason} ${e.message}`));
  for (const p of seen) {
    const log = await env.core
      .readNamespacedPodLog({ name: p.metadata?.name as string, namespace: RELEASE_NS, tailLines: 15 })
      .catch(() => '');
    states.push(`--- ${p.metadata?.name} log:\n${log}`);
  }
  throw new Error(`the release did not roll out tag ${tag} within ${timeoutMs} ms:\n${states.join('\n')}`);
}

/** One completed activity of a workflow: its type, its task queue, the identity of the worker that completed it. */
export interface CompletedActivity {
  activity: string;
  queue: string;
  identity: string;
}

/** The workflow's completed activities in history order, with the worker that completed each. */
export async function completedActivities(env: InstalledChart, workflowId: string): Promise<CompletedActivity[]> {
  const { events } = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, { activity: string; queue: string }>();
  const done: CompletedActivity[] = [];
  const Type = temporal.api.enums.v1.EventType;
  for (const e of events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (e.eventType === Type.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED && s) {
      scheduled.set(String(e.eventId), { activity: s.activityType?.name ?? '', queue: s.taskQueue?.name ?? '' });
    }
    const c = e.activityTaskCompletedEventAttributes;
    if (e.eventType === Type.EVENT_TYPE_ACTIVITY_TASK_COMPLETED && c) {
      const { activity, queue } = scheduled.get(String(c.scheduledEventId)) ?? { activity: '', queue: '' };
      done.push({ activity, queue, identity: c.identity ?? '' });
    }
  }
  return done;
}

/** Whether `a` was completed by the chart's worker `workers` (the control pod's or the agent's, by its queue). */
export function ranOn(a: CompletedActivity, workers: ChartWorkers): boolean {
  return a.queue.startsWith('torpor-node-') ? a.identity === workers.agent : a.identity.endsWith(workers.control);
}
