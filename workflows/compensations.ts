import { CancellationScope, log } from '@temporalio/workflow';

/**
 * The saga's undo list: each step registers its undo before it runs, and on failure or cancellation
 * the undos run in reverse, in a scope that the cancellation itself cannot interrupt.
 */
export class Compensations {
  private readonly undos: { name: string; undo: () => Promise<unknown> }[] = [];

  add(name: string, undo: () => Promise<unknown>): void {
    this.undos.push({ name, undo });
  }

  async run(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      for (const { name, undo } of this.undos.reverse()) {
        try {
          await undo();
        } catch (err) {
          log.error('compensation failed', { step: name, error: String(err) });
        }
      }
    });
  }
}
