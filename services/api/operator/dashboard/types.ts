// What the dashboard reads of the API's answers. One of the dashboard's scripts: they are
// compiled together (tsconfig.json here), share one scope, and page.ts inlines them, in
// the order that file names, as one module.

/** What the page reads of GET /stats (StatsAnswer in services/api/read/stats.ts; test/unit/stats-shape.test.ts checks it). */
type Stats = {
  received: number;
  unique_processed: number;
  duplicate_dropped: number;
  /** Of the dropped copies, those whose content differed from the stored event. */
  conflicts: number;
  /** Jobs processed again after a worker died: the system's own retries. */
  redeliveries: number;
  topics_count: number;
  /** null, like queue and workers, while Redis is unreachable. */
  pending: number | null;
  topics: string[];
  uptime_seconds: number;
  per_topic: Record<string, number>;
  /** Copies dropped per topic (conflicts included), for the topics /stats lists. */
  duplicates_per_topic?: Record<string, number>;
  /** Of those, the copies whose content differed. */
  conflicts_per_topic?: Record<string, number>;
  queue: { waiting: number; active: number; delayed: number; failed: number } | null;
  workers: { live: number; list: WorkerRow[] } | null;
  store: { committed_jobs: number; bytes: number };
};

/** `role`: on SQLite, whether the worker takes the jobs (`writer`) or stands by. */
type WorkerRow = { id: string; status: string; error: string | null; committed_events: number; role?: string };

/** GET /ready, both when ready (200) and when not (503). */
type Ready = { checks?: { redis?: string; store?: string } };

type StoredEvent = {
  seq: number;
  topic: string;
  event_id: string;
  timestamp: string;
  source: string;
  payload: unknown;
  processed_at: string;
};

/** GET /events/{topic}/{event_id}: one identity, with what became of its copies. */
type Lookup = { event: StoredEvent; copies: number; conflicts: number; first_seen_at: string; last_seen_at: string };

type EventsPage = { events: StoredEvent[]; next_after: number | null };

type Sample = { t: number; received: number; processed: number };
type Rate = { t: number; recv: number; proc: number };
