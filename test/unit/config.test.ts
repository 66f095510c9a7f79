// Configuration by environment: the contract's defaults, and a bad value stops the process
// with a message naming the variable.
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig, VARIABLES, type Variable } from '../../shared/config.js';

const OPERATIONS = path.resolve(import.meta.dirname, '../../docs/operations.md');

/** The row docs/operations.md gives a variable, from the configuration table. */
function docsRow(name: string, e: Variable): string {
  const unset = e.unset === undefined ? 'unset' : `unset (${e.unset})`;
  const shown = e.default === undefined ? unset : e.parse.show(e.default);
  const usedBy = e.usedBy.map((p) => (p === 'api' ? 'API' : 'worker')).join(', ');
  return `| \`${name}\` | ${shown} | ${e.parse.bounds} | ${usedBy} | ${e.meaning} |`;
}

/** The variables table of docs/operations.md, by variable. */
function documentedRows(): Map<string, string> {
  const text = fs.readFileSync(OPERATIONS, 'utf8');
  const section = text.slice(text.indexOf('\n## Configuration\n'), text.indexOf('\n## Is it well?'));
  const rows = section.split('\n').filter((line) => line.startsWith('| `'));
  return new Map(rows.map((row) => [/^\| `([^`]+)`/.exec(row)![1]!, row]));
}

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  return expect.fail(`expected ${JSON.stringify(env)} to be refused`);
}

describe('config', () => {
  it('has the contract\'s defaults for an empty environment', () => {
    const config = loadConfig({});
    expect(config).to.include({
      port: 8080,
      host: '0.0.0.0',
      redisUrl: 'redis://127.0.0.1:6379',
      queueName: 'events',
      dataDir: './data',
      logLevel: 'info',
      apiKey: undefined,
    });
    expect(config.workerConcurrency).to.be.a('number').and.to.be.at.least(1);
  });

  it('reads the environment it is given', () => {
    const config = loadConfig({
      PORT: '9090',
      HOST: '127.0.0.1',
      REDIS_URL: 'rediss://user:pw@redis.example:6380/2',
      QUEUE_NAME: 'events-staging_2.a',
      DATA_DIR: '/var/lib/agg',
      WORKER_CONCURRENCY: '4',
      API_KEY: 's3cret',
      LOG_LEVEL: 'warn',
    });
    expect(config).to.include({
      port: 9090,
      host: '127.0.0.1',
      redisUrl: 'rediss://user:pw@redis.example:6380/2',
      queueName: 'events-staging_2.a',
      dataDir: '/var/lib/agg',
      workerConcurrency: 4,
      apiKey: 's3cret',
      logLevel: 'warn',
    });
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ PATH: '/usr/bin', NODE_ENV: 'production' }).port).to.equal(8080);
  });

  it('accepts the edges of the port range', () => {
    expect(loadConfig({ PORT: '65535' }).port).to.equal(65535);
    expect(loadConfig({ PORT: '1' }).port).to.equal(1);
  });

  for (const [name, value] of [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['LOG_LEVEL', 'loud'],
    ['REDIS_URL', 'http://x'],
    ['REDIS_URL', '127.0.0.1:6379'],
    ['QUEUE_NAME', 'events:v2'],
    ['WORKER_CONCURRENCY', '0'],
    ['API_KEY', '   '],
    ['SQLITE_KEY_FILTER_MAX_MB', '-1'],
    ['SQLITE_KEY_FILTER_MAX_MB', '1.5'],
  ] as const) {
    it(`refuses ${name}=${JSON.stringify(value)} with a message naming ${name}`, () => {
      const err = configError({ [name]: value });
      expect(err.message).to.include(name);
      expect(err.problems).to.have.length(1);
      expect(err.problems[0]).to.include(name);
    });
  }

  it('reports every bad variable at once', () => {
    const err = configError({
      PORT: 'abc',
      LOG_LEVEL: 'loud',
      REDIS_URL: 'http://x',
      QUEUE_NAME: 'a:b',
      HOST: '127.0.0.1',
    });
    expect(err.problems).to.have.length(4);
    for (const name of ['PORT', 'LOG_LEVEL', 'REDIS_URL', 'QUEUE_NAME']) {
      expect(err.problems.filter((p) => p.includes(name)), name).to.have.length(1);
      expect(err.message).to.include(name);
    }
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).to.equal(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).to.throw(TypeError);
    expect(config.port).to.equal(8080);
  });

  it('takes an empty string for unset', () => {
    const config = loadConfig({
      PORT: '',
      HOST: '',
      REDIS_URL: '',
      QUEUE_NAME: '',
      DATA_DIR: '',
      LOG_LEVEL: '',
    });
    expect(config).to.deep.equal(loadConfig({}));
    expect(config.apiKey).to.equal(undefined);
  });

  it('reads SQLITE_KEY_FILTER_MAX_MB, 256 by default, 0 allowed (no filter)', () => {
    expect(loadConfig({}).sqliteKeyFilterMaxMb).to.equal(256);
    expect(loadConfig({ SQLITE_KEY_FILTER_MAX_MB: '0' }).sqliteKeyFilterMaxMb).to.equal(0);
    expect(loadConfig({ SQLITE_KEY_FILTER_MAX_MB: '1024' }).sqliteKeyFilterMaxMb).to.equal(1024);
  });

  it('reads EVENT_RETENTION as a duration, unset meaning forever', () => {
    expect(loadConfig({}).eventRetentionMs).to.equal(undefined);
    expect(loadConfig({ EVENT_RETENTION: '' }).eventRetentionMs).to.equal(undefined);
    expect(loadConfig({ EVENT_RETENTION: '90s' }).eventRetentionMs).to.equal(90_000);
    expect(loadConfig({ EVENT_RETENTION: '15m' }).eventRetentionMs).to.equal(900_000);
    expect(loadConfig({ EVENT_RETENTION: '12h' }).eventRetentionMs).to.equal(12 * 3_600_000);
    expect(loadConfig({ EVENT_RETENTION: '30d' }).eventRetentionMs).to.equal(30 * 86_400_000);
    expect(loadConfig({ EVENT_RETENTION: ' 2W ' }).eventRetentionMs).to.equal(14 * 86_400_000);
  });

  it('refuses an EVENT_RETENTION that is not a duration, naming it', () => {
    for (const bad of ['30', 'd', '1.5h', '-1d', '10y', 'forever', '0s', '1000000000w']) {
      const err = configError({ EVENT_RETENTION: bad });
      expect(err.problems, bad).to.have.length(1);
      expect(err.problems[0], bad).to.match(/^EVENT_RETENTION: /);
    }
  });

  for (const name of ['API_KEY', 'READ_API_KEY']) {
    it(`refuses ${name} set but empty: an empty key is no authentication`, () => {
      const err = configError({ [name]: '' });
      expect(err.problems).to.have.length(1);
      expect(err.problems[0]).to.include(name).and.include('empty');
    });
  }

  it('never echoes a value that may be a secret', () => {
    const err = configError({
      REDIS_URL: 'http://user:hunter2@redis:6379',
      DATABASE_URL: 'mysql://u:hunter3@db/x',
      API_KEY: '  ',
      QUEUE_NAME: 'a:b',
    });
    expect(err.problems).to.have.length(4);
    expect(err.message).to.not.include('hunter2').and.not.include('hunter3');
    // Not a secret: shown, so the operator sees what was wrong.
    expect(err.message).to.include('"a:b"');
  });

  it('is documented in docs/operations.md: every variable it reads, with its default, bounds, processes and meaning', () => {
    const table = Object.entries(VARIABLES as Record<string, Variable>).filter(([, e]) => e.key !== undefined);
    const expected = new Map(table.map(([name, e]) => [name, docsRow(name, e)]));
    const documented = documentedRows();
    // On a mismatch, the expected rows say what to paste into the docs.
    expect([...documented.keys()].sort(), [...expected.values()].join('\n')).to.deep.equal([...expected.keys()].sort());
    for (const [name, row] of expected) expect(documented.get(name), name).to.equal(row);
  });
});
