// `npm run bench:identity-cost`: what the store keeps per expired identity, on disk, on both
// stores (identity-size.ts says how it is measured).
//
//   npm run bench:identity-cost -- [--count 200000] [--store sqlite|postgres|both] [--no-write]
//
// Writes bench-results/identity-cost.md.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../tools/harness/root.js';
import { identityCostMarkdown, measureIdentityCost } from './identity-size.js';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '200000' }, store: { type: 'string', default: 'both' }, 'no-write': { type: 'boolean', default: false } },
});
const count = Number(values.count);
if (!['sqlite', 'postgres', 'both'].includes(values.store)) throw new Error('--store must be sqlite, postgres or both');
const stores = values.store === 'both' ? (['sqlite', 'postgres'] as const) : [values.store as 'sqlite' | 'postgres'];
const measured = await measureIdentityCost(count, stores, (line) => console.error(line));
const md = identityCostMarkdown(measured, count, `npm run bench:identity-cost -- --count ${count}`);
process.stdout.write(md);
if (!values['no-write']) fs.writeFileSync(path.join(ROOT, 'bench-results', 'identity-cost.md'), md);
