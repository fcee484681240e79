import { HttpError } from "@agentopia-toolboxes/servicekit/http";

// Calls on one tool are serialized. A call identical to the one in flight (same operation and
// key, e.g. the same PUT body) queues behind it and finds its work done; any other call on a
// busy tool is refused with 409 rather than racing it.

interface Entry {
  key: string;
  operation: string;
  pending: number;
  tail: Promise<unknown>;
}

export class ToolLocks {
  private readonly entries = new Map<string, Entry>();

  async run<T>(name: string, operation: string, key: string, fn: () => Promise<T>): Promise<T> {
    let entry = this.entries.get(name);
    if (entry && entry.key !== key) {
      throw new HttpError(
        409,
        "conflict",
        `tool '${name}' is busy with another ${entry.operation}; retry when it is done`,
      );
    }
    if (!entry) {
      entry = { key, operation, pending: 0, tail: Promise.resolve() };
      this.entries.set(name, entry);
    }
    const current = entry;
    current.pending += 1;
    const result = current.tail.then(fn, fn);
    current.tail = result.catch(() => undefined);
    try {
      return await result;
    } finally {
      current.pending -= 1;
      if (current.pending === 0 && this.entries.get(name) === current) this.entries.delete(name);
    }
  }

  busy(name: string): boolean {
    return this.entries.has(name);
  }
}
