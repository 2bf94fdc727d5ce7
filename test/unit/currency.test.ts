import { code as packageEntry, codes as packageCodes } from 'currency-codes';
import { describe, expect, it } from 'vitest';
import {
  CURRENCIES,
  currencyProblem,
  isCurrency,
  minorUnitDigits,
  parseCurrency,
} from '../../src/money/currency.ts';

describe('ISO 4217 currencies', () => {
  it("takes each currency's minor unit from ISO's list", () => {
    expect(minorUnitDigits('USD')).toBe(2);
    expect(minorUnitDigits('EUR')).toBe(2);
    expect(minorUnitDigits('JPY')).toBe(0);
    expect(minorUnitDigits('KWD')).toBe(3);
    expect(minorUnitDigits('CLF')).toBe(4);
    // Intl (CLDR) shows these with 0 decimals; ISO's minor unit is 2.
    expect(minorUnitDigits('HUF')).toBe(2);
    expect(minorUnitDigits('IDR')).toBe(2);
  });

  it('agrees with the package on every code that has a minor unit, and refuses the others', () => {
    for (const code of packageCodes()) {
      if (isCurrency(code)) expect(packageEntry(code)?.digits, code).toBe(minorUnitDigits(code));
    }
    // ISO lists these with no minor unit ("N.A."): not currencies a payment is made in.
    for (const code of ['XAU', 'XAG', 'XDR', 'XTS', 'XXX']) expect(isCurrency(code)).toBe(false);
    expect(CURRENCIES.length).toBeGreaterThan(150);
  });

  it.each([
    ['usd', 'three upper-case letters'],
    ['US', 'three upper-case letters'],
    ['USDX', 'three upper-case letters'],
    [' USD', 'three upper-case letters'],
    ['ABC', 'is not an ISO 4217 currency'],
    ['XAU', 'is not an ISO 4217 currency'],
    [7, 'must be a string'],
    [null, 'must be a string'],
  ])('refuses %j as invalid_currency', (value, message) => {
    expect(currencyProblem(value)).toContain(message);
    expect(() => parseCurrency(value)).toThrow(
      expect.objectContaining({ code: 'invalid_currency' }) as Error,
    );
  });

  it('accepts a code of the list as it is', () => {
    expect(parseCurrency('JPY')).toBe('JPY');
  });
});
