// RFC 8785 JSON canonicalization (JCS), and the check that a record is in it.

import { decodeUtf8 } from "./encoding.js";
import { VerificationError } from "./errors.js";

const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Serialize a JSON value in RFC 8785 form: members sorted by their UTF-16
 * code units, no white space, ECMAScript number and string forms.
 * @param {unknown} value
 * @returns {string}
 */
export function canonicalize(value) {
  if (value === null || typeof value === "boolean") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new TypeError(`JSON has no form for the number ${value}`);
    }
    return JSON.stringify(value);
  }
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) {
      throw new TypeError("JSON string contains a lone surrogate");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    return `[${value.map(canonicalize).join(",")}]`;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    // The default sort compares UTF-16 code units, as RFC 8785 section 3.2.3 requires.
    const names = Object.keys(value).sort();
    return `{${names.map((name) =>
      `${canonicalize(name)}:${canonicalize(value[name])}`).join(",")}}`;
  }
  throw new TypeError(`JSON has no form for a value of type ${typeof value}`);
}

/**
 * Parse record bytes and check that they are exactly the JCS form of a JSON
 * object. Duplicate member names, lone surrogates and integers beyond 2^53
 * all change the value on parsing, so the re-serialized bytes differ.
 * @param {Uint8Array} bytes
 * @returns {Record<string, unknown>}
 */
export function parseCanonical(bytes) {
  const text = decodeUtf8(bytes, "the record");
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new VerificationError(`the record is not JSON: ${err.message}`,
      { cause: err });
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new VerificationError("the record is not a JSON object");
  }
  let canonical;
  try {
    canonical = canonicalize(value);
  } catch (err) {
    throw new VerificationError(`the record is not canonical JSON: ${err.message}`,
      { cause: err });
  }
  if (canonical !== text) {
    throw new VerificationError(
      "the record is not in RFC 8785 canonical form (or repeats a member name)");
  }
  return value;
}
