// An event as GET /events shows it, as JSON text written straight from its stored row. The
// payload is stored as the JSON text JSON.stringify made of it, so it goes in as it is:
// no parse and no second serialization per event, which is most of what a live stream
// costs the API. The keys and their order are those of StoredEvent, so the text is byte
// for byte JSON.stringify of what listEvents returns (tested on both stores).

/** An event's JSON text, with the fields the stream's fan-out sorts by. */
export type EventJson = { seq: number; topic: string; json: string };

export function eventJson(
  seq: number,
  topic: string,
  eventId: string,
  timestamp: string,
  source: string,
  payloadJson: string,
  processedAt: string,
): string {
  return `{"seq":${seq},"topic":${JSON.stringify(topic)},"event_id":${JSON.stringify(eventId)},"timestamp":${JSON.stringify(timestamp)},"source":${JSON.stringify(source)},"payload":${payloadJson},"processed_at":"${processedAt}"}`;
}

