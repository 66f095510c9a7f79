// How a configuration variable's text becomes its value. Each parser builds the check for one
// variable (its messages name it) and says, for the docs, what it accepts and how a value reads.
import * as v from 'valibot';

export type Parser<T> = {
  schema(name: string): v.GenericSchema<string, T>;
  /** What it accepts, as docs/operations.md says it. */
  bounds: string;
  /** A value as the docs show it. */
  show(value: T): string;
};

const code = (value: unknown) => `\`${String(value)}\``;
const grouped = (n: number) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;
const binary = (n: number) => (n >= GIB && n % GIB === 0 ? `${n / GIB} GiB` : n >= MIB && n % MIB === 0 ? `${n / MIB} MiB` : grouped(n));

/** A parser whose values the docs show as written. */
export const parser = <T>(bounds: string, schema: (name: string) => v.GenericSchema<string, T>): Parser<T> => ({ schema, bounds, show: code });

export const int = (min: number, max: number): Parser<number> =>
  parser(`${grouped(min)} to ${grouped(max)}`, (name) =>
    v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^\d+$/, `${name} must be a whole number`),
      v.transform(Number),
      v.number(),
      v.minValue(min, `${name} must be at least ${min}`),
      v.maxValue(max, `${name} must be at most ${max}`),
    ),
  );

/** A whole number of bytes: the docs give large ones in MiB or GiB too. */
export const bytes = (min: number, max: number): Parser<number> => ({
  ...int(min, max),
  bounds: `${binary(min)} to ${binary(max)}`,
  show: (n) => (n >= MIB ? `${code(n)} (${binary(n)})` : code(n)),
});

/** Milliseconds per unit of a duration (`90s`, `12h`, `30d`, `2w`). */
const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
/** At most about 100 years: beyond that a Date overflows long before anything expires. */
const MAX_DURATION_MS = 100 * 365 * 86_400_000;

/** A duration, in milliseconds. */
export const duration: Parser<number> = parser('a duration: `90s`, `12h`, `30d`', (name) =>
  v.pipe(
    v.string(),
    v.trim(),
    v.regex(/^\d{1,12}[smhdw]$/i, `${name} must be a whole number and a unit: s, m, h, d or w (e.g. 90s, 12h, 30d)`),
    v.transform((s) => Number(s.slice(0, -1)) * DURATION_UNITS[s.slice(-1).toLowerCase()]!),
    v.number(),
    v.minValue(1000, `${name} must be at least 1s`),
    v.maxValue(MAX_DURATION_MS, `${name} must be at most 100 years`),
  ),
);

export const nonEmpty = parser('not blank', (name) => v.pipe(v.string(), v.trim(), v.minLength(1, `${name} must not be empty`)));

/** A key: unset means no key, set means not blank. */
export const key = parser('not blank', (name) => v.pipe(v.string(), v.trim(), v.minLength(1, `${name} must not be empty when set`)));

/** A URL whose scheme `pattern` matches (`bounds` names them for the docs), checked for its shape only. */
export const url = (pattern: RegExp, bounds: string, message: string): Parser<string> =>
  parser(bounds, () => v.pipe(v.string(), v.trim(), v.check((s) => pattern.test(s) && URL.canParse(s), message)));

/** A variable no longer read: refused with `message`, whatever its value. */
export const refused = (message: string): Parser<string> => parser('refused', () => v.custom<string>(() => false, message));
