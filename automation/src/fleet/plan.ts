/**
 * Pure planning of a fleet upgrade: which toolboxes are canaries, and the wave of every other.
 * Waves are cumulative percentages of the toolboxes after the canaries: [1, 10, 50, 100] means
 * 1 % of them by the end of wave 1, 10 % by the end of wave 2, and so on; the last is 100.
 */
import { createHash } from "node:crypto";

/** Wave 0 holds the canaries (possibly none); waves 1… follow the percentages. */
const CANARY_WAVE = 0;

/** A stable shuffle: the order of sha256(seed + id), so a plan does not follow creation order. */
function shuffled(ids: readonly string[], seed: string): string[] {
  const key = (id: string) =>
    createHash("sha256").update(seed).update("\0").update(id).digest("hex");
  return [...ids]
    .map((id) => ({ id, k: key(id) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map((x) => x.id);
}

export interface WaveInput {
  /** Every toolbox of the upgrade. */
  accounts: readonly string[];
  /** Explicit canaries (a subset of accounts), or a number of them drawn by the seed. */
  canaries: { accounts: readonly string[] } | { count: number };
  /** Cumulative percentages, strictly increasing, the last 100. */
  waves: readonly number[];
  seed: string;
}

/** The wave of every account: 0 for canaries, then 1..waves.length. */
export function assignWaves(input: WaveInput): Map<string, number> {
  const order = shuffled(input.accounts, input.seed);
  const canaries =
    "accounts" in input.canaries
      ? new Set(input.canaries.accounts)
      : new Set(order.slice(0, Math.min(input.canaries.count, order.length)));
  const result = new Map<string, number>();
  const rest = order.filter((a) => !canaries.has(a));
  for (const a of canaries) result.set(a, CANARY_WAVE);
  let done = 0;
  input.waves.forEach((percent, i) => {
    const upTo =
      i === input.waves.length - 1 ? rest.length : Math.ceil((rest.length * percent) / 100);
    for (; done < upTo; done++) result.set(rest[done], i + 1);
  });
  return result;
}

/**
 * Whether a wave's failures exceed the ratio already: failures can only grow and the toolboxes
 * that count (those not skipped) only shrink, so once exceeded it stays exceeded.
 */
export function exceedsRatio(failed: number, counted: number, maxRatio: number): boolean {
  return counted > 0 && failed / counted > maxRatio;
}
