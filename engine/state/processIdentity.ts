// A process named so that a pid reused by another process is not mistaken for it: the pid and
// the process's start time (field 22 of /proc/<pid>/stat, clock ticks after boot).
import fs from 'node:fs';

/** Fields 3 onwards of /proc/<pid>/stat (field 3 is at index 0), or undefined when there is no such process. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm, field 2, may hold spaces and parentheses: count fields after its closing one.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The start time of pid, or undefined when there is no such process. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/** "<pid>-<start time>" of this process. */
export function selfIdentity(): string {
  return `${process.pid}-${processStartTime(process.pid)}`;
}

/** Whether "<pid>-<start time>" names a process that is still running (a zombie waiting to be reaped is not). */
export function isAlive(identity: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(identity);
  const fields = m ? statFields(Number(m[1])) : undefined;
  return fields !== undefined && fields[19] === m![2] && fields[0] !== 'Z' && fields[0] !== 'X';
}
