// The mount table of this process's mount namespace, as the kernel reports it.
import { readFileSync } from 'node:fs';

export interface Mount {
  mountPoint: string;
  fsType: string;
  /** Per-mount options (ro, nosuid, ...), as opposed to the file system's superOptions. */
  options: string[];
  superOptions: string[];
}

/** An empty list where /proc is not mounted: callers then see nothing mounted, which is the truth they can act on. */
export function readMounts(): Mount[] {
  try {
    return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  } catch {
    return [];
  }
}

// mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
// The optional fields vary in number, so the fields after the " - " separator are found from it.
function parseMountinfo(text: string): Mount[] {
  return text.split('\n').flatMap((line) => {
    const [before, after] = line.split(' - ');
    if (after === undefined) return [];
    const fields = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    return [
      {
        mountPoint: unescapeOctal(fields[4]),
        fsType,
        options: fields[5].split(','),
        superOptions: superOptions.split(','),
      },
    ];
  });
}

// The kernel writes space, tab, newline and backslash in paths as \040, \011, \012, \134.
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points at or under dir, deepest first (the order to unmount them in). */
export function mountsUnder(dir: string): string[] {
  return readMounts()
    .map((m) => m.mountPoint)
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}
