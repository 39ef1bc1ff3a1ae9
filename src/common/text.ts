/** Small text helpers shared by the engine, the dataplanes, the CLI views, metrics and reload reports. */

/** camelCase → snake_case (the JSON and config spelling users see). */
export function snakeCase(k: string): string {
  return k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
}

/** An object's keys in snake_case (one level). */
export function snakeKeys(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [snakeCase(k), v]));
}

/** "192.0.2.1:500" or "[2001:db8::1]:500". */
export function endpointText(addr: string, port: number): string {
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** A u32 as 8 lower-case hex digits (how SPIs are shown everywhere: "0000abcd"). */
export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}

const ONE_BYTE = /^[\x00-\xff]*$/;

/**
 * `s` as a string of its own. A substring V8 makes of a longer one (13 characters or more) keeps
 * the whole of that one alive: a configuration's values would keep the file's text, a few hundred
 * bytes per connection, for as long as the configuration runs.
 */
export function ownCopy(s: string): string {
  if (s.length < 13) return s; // V8 copies substrings this short
  return ONE_BYTE.test(s) ? Buffer.from(s, 'latin1').toString('latin1') : (s + ' ').slice(0, -1);
}
