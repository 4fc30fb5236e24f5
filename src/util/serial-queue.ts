/**
 * Runs async tasks one at a time, in the order they were queued. A task that
 * fails does not stop the ones queued after it: its own caller gets the
 * rejection, and the queue moves on.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  /** Queues `task` behind every task queued before it; settles as the task does. */
  run<T>(task: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(
      () => task(),
      () => task(),
    );
    this.tail = result.catch(() => undefined);
    return result;
  }

  /** Settles (never rejects) once every task queued so far has settled. */
  async idle(): Promise<void> {
    await this.tail;
  }
}
