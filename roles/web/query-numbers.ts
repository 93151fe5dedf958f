/**
 * The numbers a query string carries, read strictly and in one place. Elysia's number schemas coerce text with
 * `Number()`, which takes `0x10` as 16, `%205` (a space) as 5, `1e1` as 10, `1.0` as 1, `-0` as 0 and `1_000` not at
 * all but ` ` as 0. Here an integer is decimal digits, no sign, no leading zero, no point; a rate or a score is digits
 * with an optional point and exponent (`0.001`, `.001`, `1e-3`); each within its bounds. Anything else is
 * `400 invalid_parameter` naming the parameter and what it takes, before the body is read. The schema's pattern and
 * description say the same in the OpenAPI document: a query value is text, so each is documented as a string.
 */
import { t } from "elysia";
import { HttpError } from "./http-error.ts";

/** Decimal digits, with an optional point and exponent: no sign, no hex, no spaces, no `Infinity`. */
const DECIMAL = "^(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[eE][-+]?[0-9]+)?$";

/** Decimal digits without a leading zero, at most as many as `maximum` has (so `Number()` reads them exactly). */
const integerPattern = (maximum: number) => `^(?:0|[1-9][0-9]{0,${String(maximum).length - 1}})$`;

/** The refusal of a query parameter's value: the parameter and what it takes, never the value sent. */
export const invalidQueryParameter = (name: string, takes: string) => new HttpError(400, "invalid_parameter", `invalid query parameter '${name}': it takes ${takes}`);

interface Parsed {
  pattern: string;
  /** What the parameter takes, in the words of the refusal and the docs. */
  takes: string;
  inBounds: (value: number) => boolean;
  description: string;
  examples?: string[];
}

/** What a query number's schema takes, under a symbol: the OpenAPI document, which is JSON, leaves it out. */
const TAKES = Symbol("takes");

/** What the query number whose schema failed its pattern takes, for its refusal (`errors.ts`); undefined for any other schema. */
export function takesOf(schema: unknown): string | undefined {
  const takes = typeof schema === "object" && schema !== null ? Reflect.get(schema, TAKES) : undefined;
  return typeof takes === "string" ? takes : undefined;
}

/**
 * `{ [name]: schema }`: an optional query parameter of text matching `pattern`, decoded to the number it spells and
 * refused outside its bounds; a value not matching the pattern is refused with the same words (`takesOf`).
 */
function parsedQuery<N extends string>(name: N, { pattern, takes, inBounds, description, examples }: Parsed) {
  const schema = t.Optional(
    t
      .Transform(t.String({ pattern, description: `${description}; ${takes}`, [TAKES]: takes, ...(examples ? { examples } : {}) }))
      .Decode((text) => {
        const value = Number(text);
        if (!inBounds(value)) throw invalidQueryParameter(name, takes);
        return value;
      })
      .Encode(String),
  );
  return { [name]: schema } as { [P in N]: typeof schema };
}

/** An integer from `minimum` to `maximum`, in decimal digits. */
export function queryInteger<N extends string>(name: N, options: { minimum: number; maximum: number; description: string }) {
  const { minimum, maximum, description } = options;
  return parsedQuery(name, {
    pattern: integerPattern(maximum),
    takes: `an integer from ${minimum} to ${maximum}, in decimal digits`,
    inBounds: (value) => value >= minimum && value <= maximum,
    description,
  });
}

/** A number from `minimum` to `maximum` (inclusive, or `exclusive`), as a decimal with an optional exponent. */
export function queryDecimal<N extends string>(name: N, options: { minimum: number; maximum: number; exclusive?: boolean; description: string; examples?: string[] }) {
  const { minimum, maximum, exclusive = false, description, examples } = options;
  const range = exclusive ? `between ${minimum} and ${maximum} exclusive` : `from ${minimum} to ${maximum}`;
  return parsedQuery(name, {
    pattern: DECIMAL,
    takes: `a number ${range}, written as decimal digits with an optional point and exponent (0.001, .001, 1e-3)`,
    inBounds: exclusive ? (value) => value > minimum && value < maximum : (value) => value >= minimum && value <= maximum,
    description,
    examples,
  });
}
