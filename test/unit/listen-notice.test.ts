import { expect } from 'chai';
import { listenNotice } from '../../scripts/listen-notice.js';

describe('listenNotice', () => {
  it('names a specific host as it is bound, with no warning', () => {
    expect(listenNotice({ host: '127.0.0.1', port: 8080, apiKey: undefined, readApiKey: undefined })).to.deep.equal([
      'API listening on http://127.0.0.1:8080 (Ctrl-C stops everything)',
    ]);
    expect(listenNotice({ host: '::1', port: 9, apiKey: undefined, readApiKey: undefined })[0]).to.include('http://[::1]:9');
  });

  it('says a wildcard bind is every interface and warns about what is unguarded', () => {
    const lines = listenNotice({ host: '0.0.0.0', port: 8080, apiKey: undefined, readApiKey: 'r' });
    expect(lines[0]).to.include('every interface (HOST=0.0.0.0)');
    expect(lines[0]).to.include('http://127.0.0.1:8080');
    expect(lines[1]).to.match(/^warning: .* publishes \(API_KEY unset\); set HOST=127\.0\.0\.1/);
    expect(lines[1]).not.to.include('reads');
  });

  it('does not warn when both keys are set', () => {
    expect(listenNotice({ host: '::', port: 1, apiKey: 'w', readApiKey: 'r' })).to.have.length(1);
  });
});
