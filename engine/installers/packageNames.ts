// From the name a handler writes in requirements.txt (the PyPI name: Pillow, PyYAML,
// python-dateutil) to what each install provider calls the package, and to the module it imports.
// Debian's names come from Debian's own table, the one dh-python builds packages' dependencies
// with (/usr/share/dh-python/dist/cpython3_fallback: "attrs python3-attr", ~5000 lines), and
// for a name it lacks from dh-python's own rule (python3-<name>, "python-" dropped); a table
// typed here by hand missed names as common as attrs.
import fs from 'node:fs';

/** PEP 503: names differ only in case and runs of "-", "_" and "." are the same package. */
export function normalizePypiName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[-_.]+/g, '-');
}

/** Installed with dh-python (scripts/setup.sh installs it). */
export const DH_PYTHON_TABLE = '/usr/share/dh-python/dist/cpython3_fallback';

/** Where the module a handler imports is not the package's name with "-" as "_". */
const MODULE_OF: Record<string, string> = {
  pillow: 'PIL',
  pyyaml: 'yaml',
  'python-dateutil': 'dateutil',
  beautifulsoup4: 'bs4',
  'scikit-learn': 'sklearn',
  pyjwt: 'jwt',
  protobuf: 'google.protobuf',
  pycryptodome: 'Crypto',
};

let debianTable: Map<string, string> | undefined;

/** dh-python's table, by normalized PyPI name; empty where dh-python is not installed. */
function readDebianTable(): Map<string, string> {
  if (debianTable) return debianTable;
  debianTable = new Map();
  let text = '';
  try {
    text = fs.readFileSync(DH_PYTHON_TABLE, 'utf8');
  } catch {
    return debianTable;
  }
  for (const line of text.split('\n')) {
    // "<dist name> <debian package>[ <version constraint>]"; comments and blanks have no second field.
    const [dist, debian] = line.trim().split(/\s+/);
    if (dist && debian && !dist.startsWith('#')) debianTable.set(normalizePypiName(dist), debian);
  }
  return debianTable;
}

/** The Debian package that ships a PyPI package for Python 3: Debian's table, else dh-python's rule. */
export function debianPackageOf(pypiName: string): string {
  const name = normalizePypiName(pypiName);
  const known = readDebianTable().get(name);
  if (known) return known;
  // dh-python's sensible_pname: runs of anything but letters, digits and dots become "-".
  const guessed = pypiName
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9.]+/g, '-');
  return `python3-${guessed.startsWith('python-') ? guessed.slice('python-'.length) : guessed}`;
}

/** Whether Debian's table named the package, rather than dh-python's rule guessing it. */
export function inDebianTable(pypiName: string): boolean {
  return readDebianTable().has(normalizePypiName(pypiName));
}

/** The top-level module a handler imports for a PyPI package. */
export function importNameOf(pypiName: string): string {
  const name = normalizePypiName(pypiName);
  return MODULE_OF[name] ?? name.replace(/-/g, '_');
}

/**
 * Modules a package's users load that its top-level import does not: `import PIL` loads only
 * the namespace, and Image.open() imports the common format plugins on its first call
 * (Image.preinit), so a zygote for Pillow imports those too.
 */
const USED_SUBMODULES: Record<string, string[]> = {
  pillow: [
    'PIL.Image',
    'PIL.BmpImagePlugin',
    'PIL.GifImagePlugin',
    'PIL.JpegImagePlugin',
    'PIL.PpmImagePlugin',
    'PIL.PngImagePlugin',
  ],
};

/** What a zygote imports for a package, so that its forks find what their handlers use already loaded. */
export function zygoteImportsOf(pypiName: string): string[] {
  return [importNameOf(pypiName), ...(USED_SUBMODULES[normalizePypiName(pypiName)] ?? [])];
}
