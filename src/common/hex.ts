/** Small text helpers shared by the engine, the dataplanes and the control views. */

/** A u32 as 8 lower-case hex digits (how SPIs are shown everywhere: "0000abcd"). */
export function hex8(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0');
}
