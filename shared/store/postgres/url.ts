// DATABASE_URL: checked for its scheme, and never shown with its password (logs, messages).
import { StoreConfigError } from '../port.js';

const EXPECTED = 'expected postgres://user:password@host:5432/database';

/** The URL without its password, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.password = '';
    for (const name of ['password', 'sslpassword']) u.searchParams.delete(name);
    return u.toString();
  } catch {
    return '(not a URL)';
  }
}

export function parseUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new StoreConfigError(`DATABASE_URL is not a valid URL; ${EXPECTED}`);
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new StoreConfigError(`DATABASE_URL must start with postgres:// or postgresql://; ${EXPECTED}`);
  }
  return u;
}

/** An error's message with every form of the password taken out. */
export function withoutSecrets(message: string, u: URL): string {
  const secrets = [u.password, u.searchParams.get('password') ?? ''];
  try {
    secrets.push(decodeURIComponent(u.password));
  } catch {
    // a password that is not valid percent-encoding appears only as written
  }
  let out = message;
  for (const s of secrets) if (s.length > 0) out = out.split(s).join('***');
  return out;
}
