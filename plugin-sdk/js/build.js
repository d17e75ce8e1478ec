#!/usr/bin/env node
// hookshape-plugin-build SRC -o OUT.wasm: bundles the plugin module with the SDK
// (esbuild) and makes it a component of the `transformer` world (componentize-js).
//
// The component is built with `--disable http fetch-event`: StarlingMonkey's
// default build imports wasi:http, which hookshape does not give plugins. It is
// never built with AOT (`--aot` downloads a compiler at build time).

import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { componentize } from '@bytecodealliance/componentize-js';
import { build } from 'esbuild';

/** The WASI features the component leaves out (see the header). */
export const DISABLED_FEATURES = ['http', 'fetch-event'];

const SDK = dirname(fileURLToPath(import.meta.url));
const WIT = join(SDK, 'wit');

/** Builds `source` (a module exporting `transform`) into the component `out`. */
export async function buildPlugin(source, out) {
  source = resolve(source);
  const work = mkdtempSync(join(tmpdir(), 'hookshape-plugin-'));
  try {
    const bundle = join(work, 'plugin.js');
    await build({
      // `hookshape-plugin` is this SDK wherever the plugin imports it from, so
      // the entry and the plugin share one copy of it.
      alias: { 'hookshape-plugin': SDK },
      stdin: {
        contents: [
          "import { log } from 'hookshape:plugin/host@0.1.0';",
          "import { component } from 'hookshape-plugin';",
          `import * as plugin from ${JSON.stringify('./' + basename(source))};`,
          'export const transform = component(plugin.transform, log);',
        ].join('\n'),
        resolveDir: dirname(source),
        sourcefile: 'hookshape-entry.js',
      },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      external: ['hookshape:*'],
      outfile: bundle,
      logLevel: 'warning',
    });
    const { component } = await componentize({
      sourcePath: bundle,
      witPath: WIT,
      worldName: 'transformer',
      disableFeatures: DISABLED_FEATURES,
    });
    writeFileSync(out, component);
    return component.length;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { out: { type: 'string', short: 'o' } },
  });
  if (positionals.length !== 1 || !values.out) {
    console.error('usage: hookshape-plugin-build SOURCE.js -o PLUGIN.wasm');
    process.exit(2);
  }
  const size = await buildPlugin(positionals[0], values.out);
  console.log(`${values.out}: ${size} bytes`);
}
