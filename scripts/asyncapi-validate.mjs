// Validates AsyncAPI documents with the official parser (`@asyncapi/parser`).
//
//   node .tools/asyncapi-parser/validate.mjs FILE...
//
// scripts/test-tools copies this file next to the parser it installs. Every diagnostic is
// printed as `FILE: severity path: message`; the exit code is 1 if any document has a
// diagnostic of severity error (or does not parse at all), else 0. The last line counts
// them: `asyncapi-validate: N error(s), N warning(s), N info/hint(s)`.
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Parser } = require('@asyncapi/parser');
const { version } = require('@asyncapi/parser/package.json');

// Spectral's DiagnosticSeverity.
const SEVERITY = ['error', 'warning', 'info', 'hint'];

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}

const parser = new Parser();
let errors = 0;
let warnings = 0;
let others = 0;
for (const file of files) {
  const text = await readFile(file, 'utf8');
  const { document, diagnostics } = await parser.parse(text, { source: file });
  for (const diagnostic of diagnostics) {
    const severity = SEVERITY[diagnostic.severity] ?? String(diagnostic.severity);
    if (diagnostic.severity === 0) errors += 1;
    else if (diagnostic.severity === 1) warnings += 1;
    else others += 1;
    const path = (diagnostic.path ?? []).join('/');
    console.log(`${file}: ${severity} ${diagnostic.code} /${path}: ${diagnostic.message}`);
  }
  if (document === undefined) {
    console.log(`${file}: the document did not parse`);
    if (!diagnostics.some((diagnostic) => diagnostic.severity === 0)) errors += 1;
  }
}
console.log(
  `asyncapi-validate (@asyncapi/parser ${version}): ${errors} error(s), ${warnings} warning(s), ${others} info/hint(s)`,
);
process.exit(errors > 0 ? 1 : 0);
