// OTLP logs to events: the mapping, and the digest that identifies a record without
// log.record.uid (the same for a retry in either encoding, different for any other record).
import { expect } from 'chai';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { decodeLogs } from '../../services/api/ingest/otlp-decode.js';
import { mapLogsRequest } from '../../services/api/ingest/otlp-map.js';
import { decodeLogsRequest, encodeLogsRequest, encodeLogsResponse } from '../../services/api/ingest/otlp-proto.js';

const TRACE = '5b8efff798038103d269b633813fc60c';
const SPAN = 'eee19b7ec3c1b174';

function request(record: Record<string, unknown> = {}, resource: Record<string, unknown>[] = [{ key: 'service.name', value: { stringValue: 'svc' } }]) {
  return {
    resourceLogs: [
      {
        resource: { attributes: resource },
        scopeLogs: [
          {
            scope: { name: 'lib', version: '1' },
            logRecords: [
              {
                timeUnixNano: '1700000000123456789',
                severityNumber: 9,
                severityText: 'INFO',
                body: { stringValue: 'hello' },
                attributes: [
                  { key: 'big', value: { intValue: '9007199254740993' } },
                  { key: 'small', value: { intValue: '42' } },
                  { key: 'd', value: { doubleValue: 1.5 } },
                  { key: 'raw', value: { bytesValue: Buffer.from('hi').toString('base64') } },
                  { key: 'list', value: { arrayValue: { values: [{ boolValue: true }, { stringValue: 'x' }] } } },
                  { key: 'map', value: { kvlistValue: { values: [{ key: 'k', value: { stringValue: 'v' } }] } } },
                ],
                traceId: TRACE,
                spanId: SPAN,
                ...record,
              },
            ],
          },
        ],
      },
    ],
  };
}

/** The same request as an exporter sends it in protobuf: ids as bytes. */
function asProtobuf(json: ReturnType<typeof request>): Uint8Array {
  const copy = structuredClone(json) as any;
  for (const rl of copy.resourceLogs) {
    for (const sl of rl.scopeLogs) {
      for (const lr of sl.logRecords) {
        lr.traceId = Buffer.from(lr.traceId, 'hex');
        lr.spanId = Buffer.from(lr.spanId, 'hex');
        for (const kv of lr.attributes) if (kv.value.bytesValue) kv.value.bytesValue = Buffer.from(kv.value.bytesValue, 'base64');
      }
    }
  }
  return encodeLogsRequest(copy);
}

describe('OTLP logs mapping', () => {
  const at = '2025-01-01T00:00:00.000Z';

  it('maps a record as the contract says, attribute values as plain JSON', () => {
    const [e] = mapLogsRequest(request(), at);
    expect(e).to.deep.include({ topic: 'svc', source: 'svc', timestamp: '2023-11-14T22:13:20.123456789Z' });
    expect(e!.event_id).to.match(/^otlp-[0-9a-f]{64}$/);
    expect(e!.payload).to.deep.equal({
      body: 'hello',
      severity_text: 'INFO',
      severity_number: 9,
      attributes: { big: '9007199254740993', small: 42, d: 1.5, raw: 'aGk=', list: [true, 'x'], map: { k: 'v' } },
      resource: { 'service.name': 'svc' },
      scope: { name: 'lib', version: '1', attributes: {} },
      trace_id: TRACE,
      span_id: SPAN,
    });
  });

  it('takes log.record.uid, the source attributes in order, and unknown_service', () => {
    const uid = { attributes: [{ key: 'log.record.uid', value: { stringValue: '01J0ABC' } }] };
    expect(mapLogsRequest(request(uid), at)[0]!.event_id).to.equal('01J0ABC');
    const [e] = mapLogsRequest(request({}, [{ key: 'host.name', value: { stringValue: 'h1' } }]), at);
    expect(e).to.deep.include({ topic: 'unknown_service', source: 'h1' });
    const [f] = mapLogsRequest(request({}, []), at);
    expect(f).to.deep.include({ topic: 'unknown_service', source: 'otlp' });
    const [g] = mapLogsRequest(
      request({}, [
        { key: 'service.name', value: { stringValue: 's' } },
        { key: 'host.name', value: { stringValue: 'h1' } },
        { key: 'service.instance.id', value: { stringValue: 'i1' } },
      ]),
      at,
    );
    expect(g).to.deep.include({ topic: 's', source: 'i1' });
  });

  it('falls back to observedTimeUnixNano, then to the time received', () => {
    expect(mapLogsRequest(request({ timeUnixNano: '0', observedTimeUnixNano: '1000000000' }), at)[0]!.timestamp).to.equal('1970-01-01T00:00:01.000000000Z');
    expect(mapLogsRequest(request({ timeUnixNano: undefined }), at)[0]!.timestamp).to.equal(at);
  });

  it('digests the same record the same in protobuf and in JSON, and any change differently', () => {
    const json = mapLogsRequest(request(), at)[0]!;
    const pb = decodeLogs(Buffer.from(asProtobuf(request())), at)[0]!;
    expect(pb).to.deep.equal(json);
    expect(mapLogsRequest(decodeLogsRequest(asProtobuf(request())), at)[0]).to.deep.equal(json);
    const changes: [Record<string, unknown>, Record<string, unknown>[]?][] = [
      [{ timeUnixNano: '1700000000123456788' }],
      [{ observedTimeUnixNano: '5' }],
      [{ body: { stringValue: 'hello!' } }],
      [{ body: { intValue: '1' } }],
      [{ severityNumber: 10 }],
      [{ spanId: 'eee19b7ec3c1b175' }],
      [{ attributes: [] }],
      [{ flags: 1 }],
      [{}, [{ key: 'service.name', value: { stringValue: 'svc' } }, { key: 'service.instance.id', value: { stringValue: 'other' } }]],
    ];
    const ids = new Set([json.event_id]);
    for (const [record, resource] of changes) ids.add(mapLogsRequest(request(record, resource), at)[0]!.event_id);
    expect(ids.size).to.equal(changes.length + 1);
    // "1" as a string and 1 as an int are two values.
    const s = mapLogsRequest(request({ body: { stringValue: '1' } }), at)[0]!.event_id;
    const i = mapLogsRequest(request({ body: { intValue: 1 } }), at)[0]!.event_id;
    expect(s).not.to.equal(i);
  });

  it("encodes a partial success as the OpenTelemetry SDK's own serializer reads it", () => {
    const read = ProtobufLogsSerializer.deserializeResponse(encodeLogsResponse(2, 'two rejected'));
    expect(Number(read.partialSuccess?.rejectedLogRecords)).to.equal(2);
    expect(read.partialSuccess?.errorMessage).to.equal('two rejected');
    expect(ProtobufLogsSerializer.deserializeResponse(encodeLogsResponse(0, '')).partialSuccess).to.equal(undefined);
  });
});
