// What both installers do with the base's own python3: byte-compile what they installed, in the
// install sandbox, with the package at /packages/<name> as a sandbox sees it; and the
// environment of the base's python3 when the engine runs it as root (asking its version).
import { InstallWork, ToolFailed } from './installSandbox.js';

/** What python3 gets in the base: nothing of the caller's environment leaks in. */
export const ROOT_ENV = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', HOME: '/tmp' };

/**
 * Byte-compiles <dir>/python with the base's python3, through /packages/<name>/python: the .pyc
 * files then carry the sandbox interpreter's magic number (the host's python may differ) and the
 * paths a sandbox's tracebacks should show, and a sandbox (whose package directories are
 * read-only) never compiles them again on import. A file that does not compile is left without
 * its .pyc, as pip does: it fails only if imported.
 */
export async function byteCompile(
  base: string,
  work: InstallWork,
  name: string,
  dir: string,
  signal?: AbortSignal,
): Promise<void> {
  try {
    await work.inBase(base, { [name]: dir }, true, {
      argv: [
        '/usr/bin/python3',
        '-I',
        '-c',
        'import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2)',
        `/packages/${name}/python/`,
      ],
      env: Object.entries(ROOT_ENV).map(([k, v]) => `${k}=${v}`),
      signal,
    });
  } catch (e) {
    if (!(e instanceof ToolFailed)) throw e;
    throw new Error(
      `byte-compiling ${name} with the base's python3 failed: ${e.output.trim().split('\n').pop() || e.message}`,
    );
  }
}
