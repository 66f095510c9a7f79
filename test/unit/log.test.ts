// Secrets never reach a log line, wherever in a logged object they sit.
import { expect } from 'chai';
import { createLogger } from '../../shared/log.js';

describe('log', () => {
  it('redacts authorization headers and the API key', () => {
    const lines: string[] = [];
    const log = createLogger({ name: 'test', level: 'info', destination: { write: (s: string) => lines.push(s) } });
    log.info({ authorization: 'Bearer k1' }, 'top level');
    log.info({ headers: { authorization: 'Bearer k2', host: 'h' } }, 'headers');
    log.info({ req: { headers: { authorization: 'Bearer k3' } } }, 'request');
    log.info({ apiKey: 'k4', config: { apiKey: 'k5', port: 8080 } }, 'config');
    log.child({ reqId: 'r' }).warn({ headers: { authorization: 'Bearer k6' } }, 'child');
    expect(lines).to.have.length(5);
    const all = lines.join('');
    for (const secret of ['k1', 'k2', 'k3', 'k4', 'k5', 'k6']) expect(all).not.to.include(secret);
    expect(all.match(/\[redacted\]/g)).to.have.length(6);
    // What is not secret stays.
    expect(all).to.include('"host":"h"').and.to.include('"port":8080');
  });
});
