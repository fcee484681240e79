/**
 * Evaluates the operator program under mocks with 1, 100 and 1,000 toolboxes and prints wall
 * time and peak RSS for each (figures, not assertions). Each size runs in its own process so
 * peak memory is its own. Targets: 1 ≤ 0.5 s, 100 ≤ 3 s, cost linear in toolboxes.
 *
 *   npm run bench            # all sizes
 *   npx tsx bench/program.bench.ts --child 100
 */
import { execFileSync } from "node:child_process";
import { evaluateStack } from "../plan/evaluate";

const SIZES = [1, 100, 1000];

async function child(count: number): Promise<void> {
  const toolboxes = Array.from({ length: count }, (_, i) => ({ accountId: `bench-${i}` }));
  // Warm the SDK's module loading and the mock key pair, so the figure is the evaluation.
  await evaluateStack("dev");
  const started = process.hrtime.bigint();
  const ev = await evaluateStack("dev", { config: { toolboxes: JSON.stringify(toolboxes) } });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const peakMb = process.resourceUsage().maxRSS / 1024;
  process.stdout.write(JSON.stringify({ count, seconds, peakMb, resources: ev.resources.length }));
}

function main(): void {
  const rows = SIZES.map((count) => {
    const out = execFileSync(
      process.execPath,
      ["--max-old-space-size=6144", "--import=tsx", __filename, "--child", String(count)],
      {
        encoding: "utf8",
        maxBuffer: 1 << 20,
      },
    );
    return JSON.parse(out.slice(out.lastIndexOf("{"))) as {
      count: number;
      seconds: number;
      peakMb: number;
      resources: number;
    };
  });
  console.log("toolboxes  resources  seconds  ms/toolbox  peak RSS MB");
  for (const r of rows) {
    console.log(
      `${String(r.count).padStart(9)}  ${String(r.resources).padStart(9)}  ${r.seconds.toFixed(2).padStart(7)}  ` +
        `${((r.seconds * 1000) / r.count).toFixed(1).padStart(10)}  ${r.peakMb.toFixed(0).padStart(11)}`,
    );
  }
  const [, hundred, thousand] = rows;
  if (hundred && thousand) {
    console.log(
      `linearity: time(1000)/time(100) = ${(thousand.seconds / hundred.seconds).toFixed(2)} (10.00 is linear)`,
    );
  }
}

const i = process.argv.indexOf("--child");
if (i >= 0) {
  child(Number(process.argv[i + 1])).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else {
  main();
}
