// Commit notices come over Redis pub/sub from workers of any version: what parseNotice
// takes, and what it refuses.
import { expect } from 'chai';
import { parseNotice } from '../../shared/notices.js';

describe('commit notices', () => {
  it('reads seq, the waiting jobs and when the commit ended', () => {
    const jobs = [{ job: 'p-1-x', results: [{ status: 'stored', seq: 7 }] }];
    expect(parseNotice(JSON.stringify({ seq: 7, jobs, committed_at: 1_764_561_600_000 }))).to.deep.equal({ seq: 7, jobs, committed_at: 1_764_561_600_000 });
  });

  it('takes a notice without committed_at (a worker of an earlier version)', () => {
    expect(parseNotice('{"seq":3,"jobs":[]}')).to.deep.equal({ seq: 3, jobs: [] });
  });

  it('ignores a committed_at that is not a number, and refuses what is not a notice', () => {
    expect(parseNotice('{"seq":3,"jobs":[],"committed_at":"soon"}')).to.deep.equal({ seq: 3, jobs: [] });
    for (const bad of ['', 'null', '[]', '{"seq":"3","jobs":[]}', '{"seq":3}', '{"seq":3,"jobs":{}}', '{']) {
      expect(parseNotice(bad), bad).to.equal(undefined);
    }
  });
});
