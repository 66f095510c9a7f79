// An event as GET /events shows it, as JSON text written straight from its stored row. The
// payload is stored as the JSON text JSON.stringify made of it, so it goes in as it is:
// no parse and no second serialization per event, which is most of what a live stream
// costs the API. The keys and their order are those of StoredEvent, so the text is byte
// for byte JSON.stringify of what listEvents returns (tested on both stores).

/** An event's JSON text, with the fields the stream's fan-out sorts by. */
export type EventJson = { seq: number; topic: string; json: string };

/** What the live stream reads: events after a cursor, of some topics or of all. */
export type EventJsonQuery = { topics?: readonly string[] | undefined; after: number; limit: number };

/**
 * A page of events, and how far it reaches: every event of the asked topics with
 * `after < seq <= through` is in `events`. For a full page `through` is its last event's
 * seq; for a short one it is the highest seq visible to the read (all topics), taken in the
 * same snapshot, so a cursor can move past events of topics nobody asked for.
 */
export type EventJsonPage = { events: EventJson[]; through: number };

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

