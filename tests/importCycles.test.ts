/**
 * No import cycle between modules: every workspace (contract, servicekit, dtma, backend,
 * automation) and the root program, tests and benchmarks, with type-only imports counted (a
 * type import both ways is still two modules that cannot be read apart). dpdm parses the imports
 * and resolves the workspace packages to their sources; the cycles are the graph's strongly
 * connected components.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { parseDependencyTree, type DependencyTree } from "dpdm";

const ROOT = join(__dirname, "..");

/** The repository's TypeScript files, tracked or new (not ignored), built output left out. */
function sourceFiles(): string[] {
  return execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "*.ts"], {
    cwd: ROOT,
    encoding: "utf8",
  })
    .split("\n")
    .filter((f) => f !== "" && !f.includes("/dist/") && !f.endsWith(".d.ts"));
}

/** Strongly connected components with more than one module, or one importing itself (Tarjan). */
export function cyclesOf(tree: DependencyTree): string[][] {
  const edges = new Map<string, string[]>();
  for (const [file, deps] of Object.entries(tree)) {
    edges.set(
      file,
      (deps ?? []).flatMap((d) => (d.id !== null && d.id in tree ? [d.id] : [])),
    );
  }
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (edges.get(v) ?? []).includes(v)) out.push(component.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return out.sort((a, b) => a[0].localeCompare(b[0]));
}

describe("import cycles", function () {
  let cycles: string[][];

  before(async function () {
    const tree = await parseDependencyTree(sourceFiles(), {
      context: ROOT,
      transform: false,
      skipDynamicImports: false,
      extensions: [".ts", ".tsx", ".mjs", ".js", ".json"],
      js: [".ts", ".tsx", ".mjs", ".js"],
      include: /\.(ts|tsx|mjs|js)$/,
      exclude: /node_modules/,
      tsconfig: undefined,
      onProgress: () => undefined,
    });
    cycles = cyclesOf(tree);
  });

  it("finds a cycle when there is one", function () {
    const dep = (issuer: string, id: string) => ({
      issuer,
      request: id,
      kind: 0,
      id,
    });
    const tree = {
      "a.ts": [dep("a.ts", "b.ts")],
      "b.ts": [dep("b.ts", "c.ts")],
      "c.ts": [dep("c.ts", "a.ts")],
      "d.ts": [dep("d.ts", "a.ts"), dep("d.ts", "d.ts")],
    } as unknown as DependencyTree;
    assert.deepEqual(cyclesOf(tree), [["a.ts", "b.ts", "c.ts"], ["d.ts"]]);
  });

  it("none between the modules of any workspace or the root program", function () {
    assert.deepEqual(
      cycles.map((c) => c.join(" ↔ ")),
      [],
      "modules that import each other, directly or through others (a shared part belongs in a module of its own)",
    );
  });
});
