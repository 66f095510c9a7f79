// The contract's example event, the starting point of every test event.
export function anEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    topic: 'orders',
    event_id: 'e-42',
    timestamp: '2025-10-24T00:00:00Z',
    source: 'checkout',
    payload: { amount: 12 },
    ...overrides,
  };
}
