import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import { fields, formatBytes, formatMs } from '../format.js';
import { withProgress } from '../progress.js';

/** `torpor container checkpoint|restore`: a running container on this node, by the ID its runtime (or pod status) gives. */
export function registerContainerCommands(program: Command, contextOf: (cmd: Command) => CliContext): void {
  const container = program.command('container').description('checkpoint a running container, restore it into a placeholder container');

  container
    .command('checkpoint')
    .description('dump a running container (it keeps running) and commit it as <hash>')
    .argument('<container-id>', 'the container, bare or as a pod status reports it (containerd://<id>)')
    .argument('<hash>', 'the checkpoint name')
    .action(async (containerId: string, hash: string, _: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startContainerCheckpoint({ node: ctx.node, containerId, hash });
      const ref = ctx.workflowRef(handle);
      ctx.note(`checkpoint of container ${containerId} on ${ctx.node}: ${ref.ui}`);
      const result = await withProgress(torpor, handle, { quiet: ctx.json });
      ctx.print({ ...ref, result }, () => [
        `checkpoint ${result.outcome}: container ${result.containerId} as ${result.hash} on ${result.node}`,
        ...fields([
          ['pod', `${result.labels.podNamespace}/${result.labels.podName}`],
          ['image', `${formatBytes(result.manifest.totalBytes)} in ${result.manifest.files.length} files`],
          ['dump', formatMs(result.manifest.timings.dumpMs)],
          ['ui', ref.ui],
        ]),
      ]);
    });

  container
    .command('restore')
    .description("restore checkpoint <hash> into a running placeholder container's namespaces")
    .argument('<hash>', 'the checkpoint')
    .argument('<placeholder-id>', 'the placeholder container (same image, waiting in the smart entrypoint)')
    .option('--marker <path>', "where the app looks for ChReK's restore marker (default /tmp/dynamo-restored)")
    .action(async (hash: string, placeholderContainerId: string, o: { marker?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const torpor = await ctx.torpor();
      const handle = await torpor.startContainerRestore({
        node: ctx.node,
        hash,
        placeholderContainerId,
        ...(o.marker === undefined ? {} : { restoreMarkerFile: o.marker }),
      });
      const ref = ctx.workflowRef(handle);
      ctx.note(`restore of ${hash} into container ${placeholderContainerId} on ${ctx.node}: ${ref.ui}`);
      const result = await withProgress(torpor, handle, { quiet: ctx.json });
      ctx.print({ ...ref, result }, () => [
        `restored ${result.hash} into container ${result.placeholderContainerId} on ${result.node}${result.alreadyRestored ? ' (already restored)' : ''}`,
        ...fields([
          ['pid', `${result.placeholderPid} in the container, ${result.hostPid} on the host`],
          ['CRIU restore', formatMs(result.restoreMs)],
          ['ui', ref.ui],
        ]),
      ]);
    });
}
