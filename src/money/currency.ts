import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { publishDate } from 'currency-codes';
import { ValidationError } from '../errors.ts';

/**
 * ISO 4217 currencies and their minor units, from ISO's own list ("list
 * one", as the `currency-codes` package ships it, updated with each ISO
 * amendment). Amounts are integers in a currency's minor unit: cents of USD,
 * yen of JPY (no minor unit), fils of KWD (a thousandth).
 *
 * Why not Intl: its digits are CLDR's display digits, not ISO's minor unit
 * (HUF, IDR and COP show 0 decimals where ISO has 2), and it formats any
 * three letters as a currency. Why not the package's `data`: it turns ISO's
 * "N.A." (gold, SDR, the testing code XTS, "no currency" XXX) into 0, which
 * would take those as currencies without a minor unit. Codes with "N.A." are
 * not currencies a payment is made in and are refused.
 */

/** An ISO 4217 alphabetic code, upper case, with a minor unit (validated at the edge). */
export type Currency = string;

/** The ISO list's publication date the table was read from. */
export const CURRENCY_LIST_DATE: string = publishDate;

/** Code → digits of its minor unit, for every entry of the list that has one. */
function readIsoList(): ReadonlyMap<string, number> {
  const path = createRequire(import.meta.url).resolve('currency-codes/iso-4217-list-one.xml');
  const xml = readFileSync(path, 'utf8');
  const table = new Map<string, number>();
  for (const [, entry = ''] of xml.matchAll(/<CcyNtry>([\s\S]*?)<\/CcyNtry>/g)) {
    const code = /<Ccy>([A-Z]{3})<\/Ccy>/.exec(entry)?.[1];
    const minor = /<CcyMnrUnts>(\d+)<\/CcyMnrUnts>/.exec(entry)?.[1];
    if (code !== undefined && minor !== undefined) table.set(code, Number(minor));
  }
  // A file that parsed to almost nothing is a broken install, not a short list.
  if (table.size < 100 || table.get('USD') !== 2) {
    throw new Error(`the ISO 4217 list at ${path} could not be read (${table.size} currencies)`);
  }
  return table;
}

const MINOR_UNITS = readIsoList();

/** Every accepted code, sorted. */
export const CURRENCIES: readonly Currency[] = Object.freeze([...MINOR_UNITS.keys()].sort());

export function isCurrency(value: unknown): value is Currency {
  return typeof value === 'string' && MINOR_UNITS.has(value);
}

/** Digits of `currency`'s minor unit: 2 for USD, 0 for JPY, 3 for KWD. */
export function minorUnitDigits(currency: Currency): number {
  const digits = MINOR_UNITS.get(currency);
  if (digits === undefined) throw new Error(`not an ISO 4217 currency: ${currency}`);
  return digits;
}

/** Why `value` is not a currency code, or null when it is one. */
export function currencyProblem(value: unknown, name = 'currency'): string | null {
  if (typeof value !== 'string') return `${name} must be a string`;
  if (!/^[A-Z]{3}$/.test(value)) {
    return `${name} must be an ISO 4217 code of three upper-case letters, got ${JSON.stringify(value.slice(0, 16))}`;
  }
  if (!MINOR_UNITS.has(value)) return `${name} ${value} is not an ISO 4217 currency`;
  return null;
}

/** `value` as a currency, or a 400 `invalid_currency`. */
export function parseCurrency(value: unknown, name = 'currency'): Currency {
  const problem = currencyProblem(value, name);
  if (problem !== null) throw new ValidationError(problem, 'invalid_currency');
  return value as Currency;
}
