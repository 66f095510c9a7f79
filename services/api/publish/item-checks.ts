// Each item of a body checked against the schema as soon as it is parsed, and only what
// passed kept: a body that will be refused holds no parsed item past its own check. Parsed
// first and validated after, 2,800 payloads 900 levels deep were 2.5 million objects alive
// at once, 11 times the body's size, only to be refused (bench-results/parse-stall.md).
import { MAX_DETAILS, validateEvents, type Event, type ValidationDetail } from '../../../shared/schema.js';

export class ItemChecks {
  /** Items seen so far. */
  count = 0;
  /** The events, in order, while every item so far passed; none once one did not (nothing will be accepted). */
  readonly events: Event[] = [];
  /** Items the schema refused. */
  readonly invalid = new Set<number>();
  /** What it said of them, at most MAX_DETAILS. */
  readonly details: ValidationDetail[] = [];

  add(item: unknown): void {
    const index = this.count++;
    const result = validateEvents([item], { keepPayloadJson: false });
    if (result.ok) {
      if (this.invalid.size === 0) this.events.push(result.events[0]!);
      return;
    }
    this.invalid.add(index);
    this.events.length = 0;
    for (const d of result.details) if (this.details.length < MAX_DETAILS) this.details.push({ ...d, index });
  }
}
