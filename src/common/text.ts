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
