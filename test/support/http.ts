// Example events for tests, each with an id of its own.
import { anEvent } from './events.js';

let counter = 0;
export function event(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter++;
  return anEvent({ event_id: `e-${process.pid}-${counter}`, payload: { amount: counter }, ...overrides });
}
