// The suppression list in memory, with the DynamoDB adapter's semantics (own entry, else the domain's), for
// unit tests of lib/delivery; lib/aws/suppression-store.ts itself is tested against moto.
import {
  type SuppressionEntry,
  type SuppressionSource,
  type SuppressionStore,
  suppressionKeysOf,
} from '../../lib/delivery/suppression.ts';

export class MemorySuppressionStore implements SuppressionStore {
  readonly entries = new Map<string, SuppressionEntry>();
  /** Set: matching() fails with it (the table unreachable). */
  failReads?: Error;

  async get(address: string) {
    return this.entries.get(address);
  }
  async matching(addresses: readonly string[]) {
    if (this.failReads) throw this.failReads;
    const matches = new Map<string, SuppressionEntry>();
    for (const address of addresses) {
      const [own, domain] = suppressionKeysOf(address);
      const entry = this.entries.get(own) ?? this.entries.get(domain);
      if (entry) matches.set(address, entry);
    }
    return matches;
  }
  async put(entry: SuppressionEntry) {
    this.entries.set(entry.address, entry);
  }
  async add(entry: SuppressionEntry) {
    if (this.entries.has(entry.address)) return false;
    this.entries.set(entry.address, entry);
    return true;
  }
  async remove(address: string) {
    this.entries.delete(address);
  }
  async list(query: { source?: SuppressionSource; limit: number }) {
    const entries = [...this.entries.values()]
      .filter((e) => !query.source || e.source === query.source)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    return { entries: entries.slice(0, query.limit) };
  }
}
