// The live stream's encoded pages: one buffer per page, and where each SSE message starts in
// it. Offsets are counted in bytes, so events beyond ASCII must still cut cleanly.
import { expect } from 'chai';
import { encodePage, slice } from '../../services/api/read/recent.js';
import { sseMessage } from '../../services/api/read/sse.js';
import { eventJson, type EventJson } from '../../shared/store/event-json.js';

function event(seq: number, topic: string, text: string): EventJson {
  return { seq, topic, json: eventJson(seq, topic, `e-${seq}`, '2025-10-24T00:00:00.000Z', 'test', JSON.stringify({ text }), '2025-10-24T00:00:01.000Z') };
}

/** Every message of a chunk, parsed back: its id and its event. */
function messages(chunk: Buffer | null): { id: number; data: unknown }[] {
  if (chunk === null) return [];
  return chunk
    .toString('utf8')
    .split('\n\n')
    .filter((m) => m !== '')
    .map((m) => {
      const [id, data] = m.split('\n');
      return { id: Number(id!.slice('id: '.length)), data: JSON.parse(data!.slice('data: '.length)) as unknown };
    });
}

const pages: [name: string, texts: string[]][] = [
  ['ASCII only', ['a', 'bb', 'ccc', 'dddd']],
  ['two- and three-byte characters', ['é', 'plain', '日本語', 'x']],
  ['characters outside the BMP (surrogate pairs)', ['😀', 'ok', '𝄞𝄞', '']],
  ['ASCII then one non-ASCII event last', ['a', 'b', 'c', 'ü']],
  ['many three-byte characters', Array.from({ length: 12 }, (_, i) => '日本語'.repeat(40 + i))],
  ['one long message among short ones', ['a', 'x'.repeat(100_000), 'é', 'b']],
];

describe('stream pages (encodePage, slice)', () => {
  for (const [name, texts] of pages) {
    it(`cuts every message at its own bytes: ${name}`, () => {
      const events = texts.map((t, i) => event(11 + i, i % 2 === 0 ? 'even' : 'odd', t));
      const page = encodePage({ events, through: 30 }, 10, undefined);
      expect(page.buf.toString('utf8')).to.equal(events.map(sseMessage).join(''));
      expect(page.offsets).to.have.length(events.length + 1);
      expect(page.offsets.at(-1)).to.equal(page.buf.length);
      events.forEach((e, i) => {
        expect(page.buf.subarray(page.offsets[i], page.offsets[i + 1]).toString('utf8')).to.equal(sseMessage(e));
      });

      // After each cursor: exactly the later messages, whole.
      for (let after = 10; after <= 15; after++) {
        const { chunk, through } = slice(page, after, undefined, Infinity);
        expect(messages(chunk).map((m) => m.id)).to.deep.equal(events.filter((e) => e.seq > after).map((e) => e.seq));
        expect(through).to.equal(30);
      }
      // One topic's messages, parsed back to the events they carry.
      const odd = messages(slice(page, 10, 'odd', Infinity).chunk);
      expect(odd.map((m) => m.data)).to.deep.equal(events.filter((e) => e.topic === 'odd').map((e) => JSON.parse(e.json) as unknown));
    });
  }

  it('stops a slice near maxBytes, at a message boundary, and says how far it reached', () => {
    const events = ['é', 'ü', 'ß', 'ø'].map((t, i) => event(1 + i, 't', t.repeat(50)));
    const page = encodePage({ events, through: 9 }, 0, undefined);
    const first = slice(page, 0, undefined, 1);
    expect(messages(first.chunk).map((m) => m.id)).to.deep.equal([1]);
    expect(first.through).to.equal(1);
    const rest = slice(page, first.through, undefined, Infinity);
    expect(messages(rest.chunk).map((m) => m.id)).to.deep.equal([2, 3, 4]);
    expect(rest.through).to.equal(9);
  });

  it('encodes an empty page as nothing, reaching to its end', () => {
    const page = encodePage({ events: [], through: 7 }, 3, undefined);
    expect(page.buf.length).to.equal(0);
    expect(page.offsets).to.deep.equal([0]);
    expect(slice(page, 3, undefined, Infinity)).to.deep.equal({ chunk: null, through: 7 });
  });
});
