// The event's field rules, as the contract states them: what a producer may send and what
// it is told when it gets something wrong.
import { expect } from 'chai';
import { anEvent } from '../support/events.js';
import * as v from 'valibot';
import {
  EventSchema,
  MAX_PAYLOAD_BYTES,
  isIsoDateTime,
  validateEvents,
  type ValidationDetail,
} from '../../shared/schema.js';

const event = anEvent;

function detailsOf(...items: unknown[]): ValidationDetail[] {
  const result = validateEvents(items);
  return result.ok ? [] : result.details;
}

function accepts(overrides: Record<string, unknown>): void {
  const details = detailsOf(event(overrides));
  expect(details, JSON.stringify(details)).to.deep.equal([]);
}

/** Asserts that the one event is refused for exactly this field. */
function rejects(overrides: Record<string, unknown>, field: string): ValidationDetail {
  const details = detailsOf(event(overrides));
  expect(details, `expected ${JSON.stringify(overrides).slice(0, 200)} to be refused`).to.have.length(1);
  expect(details[0]).to.include({ index: 0, path: field });
  expect(details[0]!.message).to.be.a('string').and.not.be.empty;
  return details[0]!;
}

/** An object whose JSON is exactly `bytes` bytes of UTF-8, built of `char` after a small prefix. */
function payloadOfBytes(bytes: number, char: string): Record<string, unknown> {
  const charBytes = Buffer.byteLength(char, 'utf8');
  const overhead = Buffer.byteLength(JSON.stringify({ a: '' }), 'utf8');
  const room = bytes - overhead;
  const pad = 'x'.repeat(room % charBytes);
  const payload = { a: pad + char.repeat(Math.floor(room / charBytes)) };
  expect(Buffer.byteLength(JSON.stringify(payload), 'utf8')).to.equal(bytes);
  return payload;
}

describe('schema', () => {
  describe('topic and event_id', () => {
    for (const field of ['topic', 'event_id']) {
      describe(field, () => {
        it('accepts 1 and 255 characters', () => {
          accepts({ [field]: 'a' });
          accepts({ [field]: 'a'.repeat(255) });
        });

        it('refuses 256 characters', () => {
          rejects({ [field]: 'a'.repeat(256) }, field);
        });

        it('counts characters by code point: 255 emoji pass, 256 do not', () => {
          // 510 UTF-16 units: a limit counted in units would refuse this.
          accepts({ [field]: '😀'.repeat(255) });
          rejects({ [field]: '😀'.repeat(256) }, field);
        });

        it('refuses an empty string', () => {
          rejects({ [field]: '' }, field);
        });

        it('refuses a value that is not a string', () => {
          rejects({ [field]: 42 }, field);
          rejects({ [field]: null }, field);
          rejects({ [field]: ['a'] }, field);
        });

        for (const control of ['\u0000', '\n', '\t', '\r', '\u001b', '\u007f', '\u0085', '\u009f']) {
          it(`refuses the control character U+${control.charCodeAt(0).toString(16).padStart(4, '0')}`, () => {
            rejects({ [field]: `a${control}b` }, field);
            rejects({ [field]: control }, field);
          });
        }

        it('refuses a lone surrogate, which SQLite would store as U+FFFD', () => {
          // From JSON, "t\\ud800" and "t\\udfff" would otherwise be two topics stored as one.
          rejects({ [field]: 'a\ud800' }, field);
          rejects({ [field]: '\udfffa' }, field);
          rejects({ [field]: '\ude00\ud83d' }, field);
        });

        it('accepts non-ASCII text that is not a control character', () => {
          accepts({ [field]: 'commandes-été-\u00a0-注文-😀' });
        });
      });
    }
  });

  describe('source', () => {
    it('accepts 255 characters and refuses 256', () => {
      accepts({ source: 's'.repeat(255) });
      accepts({ source: '😀'.repeat(255) });
      rejects({ source: 's'.repeat(256) }, 'source');
    });

    it('allows control characters', () => {
      accepts({ source: 'line one\nline two\u0000\u007f\u0085' });
    });

    it('refuses a lone surrogate', () => {
      rejects({ source: 'checkout\ud800' }, 'source');
    });

    it('refuses an empty string and a non-string', () => {
      rejects({ source: '' }, 'source');
      rejects({ source: 7 }, 'source');
    });
  });

  describe('timestamp', () => {
    const valid = [
      '2025-10-24T00:00:00Z',
      '2025-10-24T00:00:00+07:00',
      '2025-10-24T00:00:00-03:30',
      '2025-10-24T00:00:00-0330',
      '2025-10-24T00:00:00.123456Z',
      '2025-10-24T23:59:59.1+01:00',
      '2025-10-24T00:00:00',
      '2024-02-29T00:00:00Z',
      '2000-02-29T12:00:00Z',
      '2025-12-31T23:59:59Z',
    ];
    const invalid = [
      '2025-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2025-04-31T00:00:00Z',
      '2025-13-01T00:00:00Z',
      '2025-00-10T00:00:00Z',
      '2025-10-00T00:00:00Z',
      '2025-10-24T24:00:00Z',
      '2025-10-24T00:60:00Z',
      '2025-10-24T00:00:60Z',
      '2025-10-24T00:00:00+24:00',
      '2025-10-24',
      '00:00:00Z',
      'not a date',
      '',
      '2025-10-24T00:00:00Z\n',
      ' 2025-10-24T00:00:00Z',
    ];

    for (const s of valid) {
      it(`accepts ${s}`, () => {
        expect(isIsoDateTime(s)).to.equal(true);
        accepts({ timestamp: s });
      });
    }

    for (const s of invalid) {
      it(`refuses ${JSON.stringify(s)}`, () => {
        expect(isIsoDateTime(s)).to.equal(false);
        rejects({ timestamp: s }, 'timestamp');
      });
    }

    it('refuses numbers, even a plausible epoch', () => {
      rejects({ timestamp: 1761264000 }, 'timestamp');
      rejects({ timestamp: 1761264000000 }, 'timestamp');
    });
  });

  describe('payload', () => {
    it('accepts any JSON object, the empty one and nested ones included', () => {
      accepts({ payload: {} });
      accepts({ payload: { a: [1, { b: null }], c: 'x', d: true } });
    });

    for (const [what, payload] of [
      ['an array', [1, 2]],
      ['an empty array', []],
      ['null', null],
      ['a string', '{"amount": 12}'],
      ['a number', 12],
    ] as const) {
      it(`refuses ${what}`, () => {
        rejects({ payload }, 'payload');
      });
    }

    it(`accepts exactly ${MAX_PAYLOAD_BYTES} bytes of JSON, counted in UTF-8`, () => {
      expect(MAX_PAYLOAD_BYTES).to.equal(256 * 1024);
      accepts({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES, 'é') });
      accepts({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES, '€') });
      accepts({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES, '😀') });
      accepts({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES, 'a') });
    });

    it('refuses one byte more', () => {
      rejects({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES + 1, 'é') }, 'payload');
      rejects({ payload: payloadOfBytes(MAX_PAYLOAD_BYTES + 1, 'a') }, 'payload');
    });

    it('counts bytes, not UTF-16 units', () => {
      // About 87k units but 256 KiB + 1 byte: a check on string length would let it through.
      const payload = payloadOfBytes(MAX_PAYLOAD_BYTES + 1, '€');
      expect(JSON.stringify(payload).length).to.be.below(MAX_PAYLOAD_BYTES);
      rejects({ payload }, 'payload');
    });

    it('keeps a "__proto__" own key from JSON.parse, unchanged', () => {
      const payload = JSON.parse('{"__proto__": {"admin": true}, "amount": 12}') as Record<string, unknown>;
      const result = validateEvents([event({ payload })]);
      expect(result.ok).to.equal(true);
      if (!result.ok) return;
      const out = result.events[0]!.payload;
      expect(Object.keys(out)).to.deep.equal(['__proto__', 'amount']);
      expect(Object.getPrototypeOf(out)).to.equal(Object.prototype);
      expect(JSON.stringify(out)).to.equal('{"__proto__":{"admin":true},"amount":12}');
    });
  });

  describe('the validated event', () => {
    it('holds the five fields as given, unknown fields dropped', () => {
      const result = validateEvents([event({ extra: 1, seq: 99, processed_at: 'x' })]);
      expect(result.ok).to.equal(true);
      if (!result.ok) return;
      expect(result.events).to.deep.equal([
        {
          topic: 'orders',
          event_id: 'e-42',
          timestamp: '2025-10-24T00:00:00Z',
          source: 'checkout',
          payload: { amount: 12 },
        },
      ]);
    });

    it('keeps the batch order', () => {
      const result = validateEvents([event({ event_id: 'a' }), event({ event_id: 'b' }), event({ event_id: 'c' })]);
      expect(result.ok).to.equal(true);
      if (result.ok) expect(result.events.map((e) => e.event_id)).to.deep.equal(['a', 'b', 'c']);
    });

    it('is what EventSchema accepts on its own', () => {
      expect(v.is(EventSchema, event())).to.equal(true);
      expect(v.is(EventSchema, event({ timestamp: '2025-02-29T00:00:00Z' }))).to.equal(false);
      expect(v.is(EventSchema, event({ topic: 'a\nb' }))).to.equal(false);
    });
  });

  describe('details', () => {
    it('says "is required" for a missing field, with its path', () => {
      for (const field of ['topic', 'event_id', 'timestamp', 'source', 'payload']) {
        const item = event();
        delete item[field];
        expect(detailsOf(item)).to.deep.equal([{ index: 0, path: field, message: 'is required' }]);
      }
    });

    it('gives the path "" for an item that is not an object', () => {
      for (const item of [42, 'an event', null, true, [event()]]) {
        const details = detailsOf(item);
        expect(details, JSON.stringify(item)).to.have.length(1);
        expect(details[0]).to.include({ index: 0, path: '' });
        expect(details[0]!.message).to.be.a('string').and.not.be.empty;
      }
    });

    it('reports every bad field of an event', () => {
      const details = detailsOf(event({ topic: '', timestamp: 'soon', payload: [] }));
      expect(details.map((d) => d.path).sort()).to.deep.equal(['payload', 'timestamp', 'topic']);
      expect(details.every((d) => d.index === 0)).to.equal(true);
    });

    it('reports every invalid event of a batch with its 0-based index', () => {
      const details = detailsOf(
        event(),
        event({ timestamp: '2025-02-29T00:00:00Z' }),
        event(),
        42,
        event({ payload: null }),
        event(),
      );
      expect(details.map((d) => [d.index, d.path])).to.deep.equal([
        [1, 'timestamp'],
        [3, ''],
        [4, 'payload'],
      ]);
    });

    it('accepts an empty list: an empty batch is the caller\'s to refuse', () => {
      expect(validateEvents([])).to.deep.equal({ ok: true, events: [] });
    });
  });
});
