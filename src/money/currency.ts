/**
 * ISO 4217 currency codes, from the ICU data Node ships (Intl), kept up to
 * date with Node itself rather than by a hand-typed table.
 */
const KNOWN: ReadonlySet<string> = new Set(Intl.supportedValuesOf('currency'));

/** An upper-case ISO 4217 code this build knows. */
export function isCurrency(code: string): boolean {
  return /^[A-Z]{3}$/.test(code) && KNOWN.has(code);
}
