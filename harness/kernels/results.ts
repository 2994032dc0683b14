// Where each kernel's runs landed, what the guest reported, and what the host adds to them.
import fs from 'node:fs';
import { readMeta, type RunVm, writeMeta } from '../runDirs.js';

/** The status of a study's run as its meta.json says (complete, failed, interrupted, running), or undefined. */
export function runStatus(runDir: string): string | undefined {
  return readMeta(runDir)?.status;
}

/** Adds the vm object to a run's meta.json: who booted the kernel the run measured, and how. */
export function stampVm(runDir: string, vm: RunVm): void {
  const meta = readMeta(runDir);
  if (!meta) throw new Error(`${runDir}: no readable meta.json to record the guest in`);
  writeMeta(runDir, { ...meta, vm });
}

/** The exit status of each study the guest (or the host) ran: "study rc" lines of the status file. */
export function readStatus(file: string): Map<string, number> {
  const status = new Map<string, number>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [study, rc] = line.trim().split(/\s+/);
      if (study && rc !== undefined && /^\d+$/.test(rc)) status.set(study, Number(rc));
    }
  } catch {
    // No file: nothing ran to the end.
  }
  return status;
}

export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** What became of one study on one kernel. */
export interface StudyOutcome {
  exitStatus: number | null;
  runDir: string | null;
  runStatus: string | null;
}

/** What became of one kernel: recorded in the kernels run's meta.json. */
export interface KernelOutcome {
  arg: string;
  label: string;
  name: string;
  package: string | null;
  version: string | null;
  /** Boot parameters added to the guest's command line (--kernel K:PARAMS), or null. */
  params: string | null;
  release: string | null;
  accel: 'host' | 'kvm' | 'tcg' | null;
  emulated: boolean;
  fallback?: string;
  status: 'pending' | 'complete' | 'failed' | 'interrupted';
  reason?: string;
  seconds: number;
  console: string;
  studies: Record<string, StudyOutcome>;
}
