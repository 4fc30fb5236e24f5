/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). A lone
 * surrogate cannot be encoded in UTF-8: Buffer and msgpackr write U+FFFD in
 * its place, so two distinct strings would be stored as one.
 */
export function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed is in Node 20; the project's lib setting predates its typings.
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}
