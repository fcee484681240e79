import { statfs } from "node:fs/promises";
import os from "node:os";
import type { SystemMetrics } from "../api";

// Host figures for /status: CPU usage from the difference between two samples of os.cpus(),
// memory from the kernel, disk from statfs of the root file system.

interface CpuTimes {
  idle: number;
  total: number;
}

function cpuTimes(): CpuTimes {
  let idle = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    idle += t.idle;
    total += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  return { idle, total };
}

export class SystemSampler {
  private last = cpuTimes();

  constructor(private readonly diskPath = "/") {}

  async sample(containers: SystemMetrics["containers"]): Promise<SystemMetrics> {
    const now = cpuTimes();
    const total = now.total - this.last.total;
    const usage = total > 0 ? (1 - (now.idle - this.last.idle) / total) * 100 : 0;
    this.last = now;
    const totalMem = os.totalmem();
    const usedMem = totalMem - os.freemem();
    const fs = await statfs(this.diskPath);
    const diskTotal = fs.blocks * fs.bsize;
    const diskUsed = (fs.blocks - fs.bfree) * fs.bsize;
    const [l1, l5, l15] = os.loadavg() as [number, number, number];
    return {
      cpu: {
        count: os.availableParallelism(),
        usage_percent: round(usage),
        load_average: [round(l1), round(l5), round(l15)],
      },
      memory: {
        total_bytes: totalMem,
        used_bytes: usedMem,
        usage_percent: round((usedMem / totalMem) * 100),
      },
      disk: {
        total_bytes: diskTotal,
        used_bytes: diskUsed,
        usage_percent: diskTotal > 0 ? round((diskUsed / diskTotal) * 100) : 0,
      },
      containers,
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
