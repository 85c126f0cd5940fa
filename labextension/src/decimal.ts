/**
 * Exact arithmetic on decimal strings ("0.0123", "-12.5"), for money and shares of money.
 *
 * Dollars arrive as decimal strings and are never turned into floats for display: a value is an
 * integer count of 10^-scale units, held in a BigInt.
 */

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** A decimal as `units × 10^-scale`. */
export interface IDecimal {
  units: bigint;
  scale: number;
}

/** Parse a plain decimal string (no exponent); null for anything else. */
export function parseDecimal(value: unknown): IDecimal | null {
  if (typeof value === 'number') {
    return isFinite(value) ? parseDecimal(value.toFixed(12)) : null;
  }
  if (typeof value !== 'string') {
    return null;
  }
  const match = DECIMAL.exec(value.trim());
  if (!match) {
    return null;
  }
  const [, sign, whole, frac = ''] = match;
  const units = BigInt(whole + frac);
  return { units: sign ? -units : units, scale: frac.length };
}

function pow10(n: number): bigint {
  return BigInt('1' + '0'.repeat(n));
}

function align(a: IDecimal, b: IDecimal): [bigint, bigint, number] {
  const scale = Math.max(a.scale, b.scale);
  return [a.units * pow10(scale - a.scale), b.units * pow10(scale - b.scale), scale];
}

/** `a - b`, exactly. */
export function subtract(a: IDecimal, b: IDecimal): IDecimal {
  const [x, y, scale] = align(a, b);
  return { units: x - y, scale };
}

/** -1, 0 or 1 as `a` is below, equal to or above `b`. */
export function compare(a: IDecimal, b: IDecimal): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** |n / d| rounded half up to an integer (d ≠ 0). */
export function divideRounded(n: bigint, d: bigint): bigint {
  const num = n < 0 ? -n : n;
  const den = d < 0 ? -d : d;
  return (BigInt(2) * num + den) / (BigInt(2) * den);
}

/** |value| rounded half up to `places` decimals, as units of 10^-places. */
export function roundUnits(value: IDecimal, places: number): bigint {
  if (value.scale <= places) {
    const units = value.units * pow10(places - value.scale);
    return units < 0 ? -units : units;
  }
  return divideRounded(value.units, pow10(value.scale - places));
}

/** Unsigned `units × 10^-places` as text with thousands separators: 123456, 2 → "1,234.56". */
export function unitsText(units: bigint, places: number): string {
  const digits = units.toString().padStart(places + 1, '0');
  const whole = digits.slice(0, digits.length - places).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return places > 0 ? `${whole}.${digits.slice(digits.length - places)}` : whole;
}

/** A decimal back to a plain string. */
export function decimalText(value: IDecimal): string {
  const sign = value.units < 0 ? '-' : '';
  const units = value.units < 0 ? -value.units : value.units;
  return sign + unitsText(units, value.scale).replace(/,/g, '');
}

/** `a + b`, exactly. */
export function add(a: IDecimal, b: IDecimal): IDecimal {
  const [x, y, scale] = align(a, b);
  return { units: x + y, scale };
}

/** The exact sum of decimal strings (those that are not decimals are skipped), as a string. */
export function sumDecimals(values: (string | null | undefined)[]): string {
  let total: IDecimal = { units: BigInt(0), scale: 0 };
  for (const value of values) {
    const parsed = parseDecimal(value);
    if (parsed) {
      total = add(total, parsed);
    }
  }
  return decimalText(total);
}
