/** Small text helpers shared by the CLI views, logs, metrics and reload reports. */

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
