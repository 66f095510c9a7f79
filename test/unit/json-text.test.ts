// Reading JSON text strictly: UTF-8 without replacement, nesting measured before parsing,
// numbers a double would change and keys given twice found with their paths.
import { expect } from 'chai';
import { HttpError } from '../../services/api/http/errors.js';
import { decodeUtf8, depthExceededAt, exactNumber, scanJson, type Segment } from '../../services/api/publish/json-text.js';
import { jsonItems, ndjsonItems } from '../../services/api/publish/items.js';

function findings(text: string): [string, string, Segment[]][] {
  const out: [string, string, Segment[]][] = [];
  scanJson(text, (finding, where, token) => out.push([finding, token, where.path()]));
  return out;
}

function refusal(run: () => unknown): HttpError {
  try {
    run();
  } catch (err) {
    expect(err).to.be.instanceOf(HttpError);
    return err as HttpError;
  }
  return expect.fail('expected a refusal');
}

async function refusalOf(run: () => Promise<unknown>): Promise<HttpError> {
  try {
    await run();
  } catch (err) {
    expect(err).to.be.instanceOf(HttpError);
    return err as HttpError;
  }
  return expect.fail('expected a refusal');
}

describe('json-text', () => {
  it('refuses bytes that are not UTF-8 instead of replacing them', () => {
    expect(decodeUtf8(Buffer.from('{"a":"é"}'))).to.equal('{"a":"é"}');
    expect(decodeUtf8(Buffer.from([0xef, 0xbb, 0xbf, 0x31]))).to.equal('1');
    for (const bad of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
      const err = refusal(() => decodeUtf8(Buffer.from([0x22, ...bad, 0x22])));
      expect(err.status).to.equal(400);
      expect(err.code).to.equal('invalid_json');
    }
  });

  it('tells numbers a double holds exactly from those it would change', () => {
    for (const ok of ['0', '-0', '-0.0', '1', '1.0', '1e2', '1E+2', '0.1', '1.5e-7', '9007199254740991', '100000000000000000000', '5e-324', '1.7976931348623157e308', '123456789.123456']) {
      expect(exactNumber(ok), ok).to.equal(true);
    }
    for (const bad of ['9007199254740993', '12345678901234567890', '1e400', '-1e400', '1e-400', '0.1000000000000000055511151231257827', '1.00000000000000001']) {
      expect(exactNumber(bad), bad).to.equal(false);
    }
  });

  it('reports inexact numbers and repeated keys with their paths, and nothing in strings', () => {
    const text = '{"a":[1,9007199254740993,{"b":1e400}],"s":"9007199254740993 {\\"x\\":1,\\"x\\":2}","c":{"k":1,"\\u006b":2},"d":12345678901234}';
    expect(findings(text)).to.deep.equal([
      ['inexact_number', '9007199254740993', ['a', 1]],
      ['inexact_number', '1e400', ['a', 2, 'b']],
      ['duplicate_key', 'k', ['c', 'k']],
    ]);
    const many = `{${Array.from({ length: 20 }, (_, i) => `"k${i}":${i}`).join(',')},"k7":0}`;
    expect(findings(many)).to.deep.equal([['duplicate_key', 'k7', ['k7']]]);
  });

  it('measures nesting on the text, strings aside, and stops at the first level past the limit', () => {
    expect(depthExceededAt('[[1]]', 2)).to.equal(-1);
    expect(depthExceededAt('[[[1]]]', 2)).to.equal(2);
    expect(depthExceededAt('["[[[[", {"a":"]]]"}]', 2)).to.equal(-1);
    expect(depthExceededAt('["\\"[[["]', 1)).to.equal(-1);
    const deep = '['.repeat(8_000_000) + ']'.repeat(8_000_000);
    expect(depthExceededAt(deep)).to.equal(1000);
  });

  it('refuses a body nested too deep before parsing it, naming the event', async () => {
    const deep = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
    const event = (payload: string) => `{"topic":"t","event_id":"e","timestamp":"2025-10-24T00:00:00Z","source":"s","payload":${payload}}`;
    const err = await refusalOf(() => jsonItems(`[${event('{}')},${event(deep(2_000_000))}]`));
    expect(err.status).to.equal(422);
    expect(err.extra.details).to.deep.equal([{ index: 1, path: 'payload', message: 'must nest at most 256 levels deep' }]);
    const nd = await refusalOf(() => ndjsonItems(`${event('{}')}\n${event('{}')}\n${event(deep(5000))}\n`));
    expect((nd.extra.details as { index: number }[])[0]!.index).to.equal(2);
  });

  it('ties text findings to the event they are in, for every shape', async () => {
    const event = (payload: string, extra = '') => `{"topic":"t","event_id":"e","timestamp":"2025-10-24T00:00:00Z","source":"s"${extra},"payload":${payload}}`;
    const bad = event('{"n":9007199254740993}');
    const good = event('{"n":1}');
    expect((await jsonItems(bad)).details.map((d) => [d.index, d.path])).to.deep.equal([[0, 'payload.n']]);
    expect((await jsonItems(`[${good},${bad}]`)).details.map((d) => [d.index, d.path])).to.deep.equal([[1, 'payload.n']]);
    expect((await jsonItems(`{"events":[${good},${good},${bad}],"n":1e400}`)).details.map((d) => [d.index, d.path])).to.deep.equal([[2, 'payload.n']]);
    expect([...(await ndjsonItems(`${good}\n\n${bad}\n`)).invalid]).to.deep.equal([1]);
    // Unknown fields are ignored, so what they hold is too; the five fields are not.
    expect((await jsonItems(event('{}', ',"x":1e400,"y":1,"y":2'))).invalid.size).to.equal(0);
    expect((await jsonItems(event('{}', ',"topic":"u"'))).details.map((d) => [d.index, d.path])).to.deep.equal([[0, 'topic']]);
    expect((await refusalOf(() => jsonItems(`{"events":[${good}],"events":[${good}]}`))).status).to.equal(400);
  });
});
