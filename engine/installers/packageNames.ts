// From the name a handler writes in requirements.txt (the PyPI name: Pillow, PyYAML,
// python-dateutil) to what each install provider calls the package, and to the module it imports.

/** PEP 503: names differ only in case and runs of "-", "_" and "." are the same package. */
export function normalizePypiName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[-_.]+/g, '-');
}

/** Where Debian's name is not python3-<name>, or the import is not <name>. */
const KNOWN: Record<string, { debian: string; module: string }> = {
  pillow: { debian: 'python3-pil', module: 'PIL' },
  pyyaml: { debian: 'python3-yaml', module: 'yaml' },
  'python-dateutil': { debian: 'python3-dateutil', module: 'dateutil' },
  pytz: { debian: 'python3-tz', module: 'pytz' },
  beautifulsoup4: { debian: 'python3-bs4', module: 'bs4' },
  'scikit-learn': { debian: 'python3-sklearn', module: 'sklearn' },
  pyjwt: { debian: 'python3-jwt', module: 'jwt' },
  protobuf: { debian: 'python3-protobuf', module: 'google.protobuf' },
  pycryptodome: { debian: 'python3-pycryptodome', module: 'Crypto' },
};

/** The Debian package that ships a PyPI package for Python 3. */
export function debianPackageOf(pypiName: string): string {
  const name = normalizePypiName(pypiName);
  return KNOWN[name]?.debian ?? `python3-${name}`;
}

/** The top-level module a handler imports for a PyPI package. */
export function importNameOf(pypiName: string): string {
  const name = normalizePypiName(pypiName);
  return KNOWN[name]?.module ?? name.replace(/-/g, '_');
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
