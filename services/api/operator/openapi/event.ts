// The event's JSON Schema, generated from shared/schema.ts's EventSchema, the one the API
// validates with, so the document cannot drift from what /publish accepts. Conversion runs
// with errorMode 'throw': a rule added to the schema that JSON Schema cannot say fails the
// build of this document (and its test) instead of vanishing from it.
import { toJsonSchema, type JsonSchema } from '@valibot/to-json-schema';
import { EventSchema, MAX_TEXT_CHARS } from '../../../../shared/schema.js';

/** What each field means; its rules come from the schema. */
const FIELD_MEANING: Record<string, string> = {
  topic: 'The stream the event belongs to.',
  event_id: "The event's id, chosen by the producer; (topic, event_id) is the event's identity: copies are dropped.",
  timestamp:
    'When the event happened: ISO 8601 date and time; an offset is optional (none means UTC), fractions of a second are allowed.',
  source: 'Who produced the event.',
  payload: 'Any JSON object, stored exactly as published.',
};

export const EXAMPLE_EVENT = {
  topic: 'orders',
  event_id: 'e-42',
  timestamp: '2025-10-24T00:00:00Z',
  source: 'checkout',
  payload: { amount: 12 },
};

export const EXAMPLE_EVENT_2 = {
  topic: 'orders',
  event_id: 'e-43',
  timestamp: '2025-10-24T00:00:01.250+07:00',
  source: 'checkout',
  payload: { amount: 7, currency: 'EUR', items: [{ sku: 'A-1', qty: 1 }] },
};

/** Where the converter's action overrides gather a field's check messages; removed after. */
const RULES = 'x-rules';

/** The event as JSON Schema (draft 2020-12), converted from EventSchema. */
export function eventJsonSchema(): JsonSchema {
  const schema = toJsonSchema(EventSchema, {
      target: 'draft-2020-12',
      errorMode: 'throw',
      overrideSchema: ({ valibotSchema }) =>
      // The payload is a v.custom on purpose (see shared/schema.ts); what it accepts is an object.
        valibotSchema.type === 'custom' ? { type: 'object' } : undefined,
      overrideAction: ({ valibotAction, jsonSchema }) => {
        const action = valibotAction as { type: string; message?: unknown };
        if (action.type !== 'check') return undefined;
        // A check is code; JSON Schema gets its message as prose, and the one rule that has a
        // keyword of its own (maxLength counts characters, as the check does) gets it too.
        const message = typeof action.message === 'string' ? action.message : 'must pass a check';
        const out: JsonSchema & { [RULES]?: string[] } = { ...jsonSchema };
        if (message === `must be at most ${MAX_TEXT_CHARS} characters`) out.maxLength = MAX_TEXT_CHARS;
        out[RULES] = [...((jsonSchema as { [RULES]?: string[] })[RULES] ?? []), message];
        return out;
      },
  });
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  for (const [name, field] of Object.entries(properties) as [string, JsonSchema & { [RULES]?: string[] }][]) {
    const meaning = FIELD_MEANING[name];
    const fieldRules = field[RULES] ?? [];
    delete field[RULES];
    const text = fieldRules.length > 0 ? `${meaning ?? ''} It ${fieldRules.join('; ')}.` : meaning;
    if (text !== undefined) field.description = text.trim();
  }
  delete schema.$schema;
  schema.description =
    'One event. Unknown extra fields are accepted and ignored; what is stored is exactly these five fields.';
  schema.examples = [EXAMPLE_EVENT];
  return schema;
}

