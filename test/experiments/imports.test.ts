// The package study: the name mapping, a real run of small packages (download, unpack, import
// timed; the interpreter's start subtracted; a cold import after dropping the cache), and a
// package that cannot be fetched reported in its row while the others are still measured.
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  debianPackageOf,
  importNameOf,
  inDebianTable,
  normalizePypiName,
} from '../../engine/installers/packageNames.js';
import { readCsv } from '../../harness/csv.js';
import { cli, onlyRun, refusesBadInput, scratchDir, scratchLeft } from '../helpers/helpers.js';

test('PyPI names map to Debian packages and import names, whatever their case and separators', () => {
  assert.is(normalizePypiName('Python_Dateutil'), 'python-dateutil');
  // From Debian's own table (dh-python's), whose names a hand-written one missed (attrs).
  assert.equal(
    ['Pillow', 'PyYAML', 'simplejson', 'python-dateutil', 'pytz', 'SQLAlchemy', 'attrs', 'scikit_learn'].map(
      debianPackageOf,
    ),
    [
      'python3-pil',
      'python3-yaml',
      'python3-simplejson',
      'python3-dateutil',
      'python3-tz',
      'python3-sqlalchemy',
      'python3-attr',
      'python3-sklearn',
    ],
  );
  // A name the table lacks: dh-python's rule.
  assert.not.ok(inDebianTable('no-such_thing'));
  assert.equal(['no-such_thing', 'python-zz.top'].map(debianPackageOf), ['python3-no-such-thing', 'python3-zz.top']);
  assert.equal(['Pillow', 'PyYAML', 'python-dateutil', 'zope.interface'].map(importNameOf), [
    'PIL',
    'yaml',
    'dateutil',
    'zope_interface',
  ]);
});

test('a run: each package timed, the interpreter start subtracted, a cold import, and a bad package reported in its row', async () => {
  const out = scratchDir();
  try {
    const r = await cli([
      'run',
      'imports',
      '--packages',
      'six,no-such-package-zz,simplejson',
      '--repeat',
      '1',
      '--import-runs',
      '3',
      '--out',
      out,
    ]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, 'no-such-package-zz: apt cannot resolve python3-no-such-package-zz');
    const rows = readCsv(path.join(onlyRun(out, 'imports'), 'data.csv'));
    assert.equal(
      rows.map((x) => x.package),
      ['six', 'no-such-package-zz', 'simplejson'],
    );
    const bad = rows[1]!;
    assert.match(String(bad.error), 'Unable to locate package');
    for (const ok of [rows[0]!, rows[2]!]) {
      assert.is(ok.error, '', JSON.stringify(ok));
      for (const col of ['download_ms', 'install_ms', 'installed_kb', 'python_start_ms', 'import_cold_ms', 'modules'])
        assert.ok(Number(ok[col]) > 0, `${col} ${ok[col]}`);
      // The import alone, in-process, and the import measured from outside minus a bare start
      // are two ways to the same quantity: they must agree to within the start's noise.
      const outside = Number(ok.import_ms);
      const inside = Number(ok.import_inproc_ms);
      assert.ok(
        Math.abs(outside - inside) < Number(ok.python_start_ms),
        `import ${outside} ms from outside, ${inside} ms inside`,
      );
      assert.ok(inside < Number(ok.python_start_ms) + outside, 'the interpreter start is not counted in the import');
    }
    assert.ok(fs.existsSync(path.join(out, 'figures/imports.svg')));
    assert.equal(scratchLeft('imports'), []);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});

refusesBadInput('imports', [
  [['--packages', 'six,../etc'], "'../etc'"],
  [['--import-runs', '0'], '--import-runs'],
]);

test.run();
