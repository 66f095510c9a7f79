// Progress lines on stderr: rewritten in place on a terminal, every 2 s at most in a log.
const tty = process.stderr.isTTY;
let lastLine = 0;

export function progress(line: string, force = false): void {
  if (tty) process.stderr.write(`\r\x1b[K${line}`);
  else if (force || Date.now() - lastLine > 2000) {
    lastLine = Date.now();
    process.stderr.write(`${line}\n`);
  }
}

export const say = (line: string) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);
