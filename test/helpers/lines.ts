/**
 * Reading a child process's output line by line, optionally copying it to a file as it arrives.
 */
import type { Writable } from 'node:stream';

/**
 * Calls `each` with every line of `stream` (without the newline), the last one too when the
 * output does not end in a newline; every chunk is written to `copy` first when given.
 */
export function forEachLine(stream: NodeJS.ReadableStream | null, each: (line: string) => void, copy?: Writable): void {
  if (stream === null) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    copy?.write(chunk);
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const l of parts) each(l);
  });
  stream.on('end', () => {
    if (partial !== '') each(partial);
    partial = '';
  });
}
