/** A delay Node's timers accept: below 0 is now, above 2^31−1 ms would fire at once. */
export function timerMs(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), 2_147_483_647) : 2_147_483_647;
}
