// Strict decoders for the text forms in receipts and notes.

import { timingSafeEqual } from "node:crypto";

import { VerificationError } from "./errors.js";

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

/**
 * Decode standard padded base64 (RFC 4648 section 4), rejecting any other
 * alphabet, missing padding, and non-zero padding bits, so that one value has
 * exactly one text.
 * @param {string} text
 * @param {string} what names the value in the error message
 * @returns {Buffer}
 */
export function decodeBase64(text, what) {
  if (typeof text !== "string" || !BASE64.test(text)) {
    throw new VerificationError(
      `${what}: expected standard padded base64, got ${JSON.stringify(text)}`);
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.toString("base64") !== text) {
    throw new VerificationError(
      `${what}: base64 ${JSON.stringify(text)} is not in canonical form ` +
      "(non-zero padding bits)");
  }
  return bytes;
}

/**
 * Parse a decimal integer with no sign and no leading zeros, below `limit`.
 * @param {string} text
 * @param {string} what
 * @param {bigint} limit
 * @returns {bigint}
 */
export function parseDecimal(text, what, limit) {
  if (!DECIMAL.test(text) || text.length > 19 || BigInt(text) >= limit) {
    throw new VerificationError(
      `${what}: expected a decimal integer below ${limit} without sign or ` +
      `leading zeros, got ${JSON.stringify(text)}`);
  }
  return BigInt(text);
}

/**
 * Decode UTF-8, rejecting invalid sequences.
 * @param {Uint8Array} bytes
 * @param {string} what
 */
export function decodeUtf8(bytes, what) {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (err) {
    throw new VerificationError(`${what} is not valid UTF-8`, { cause: err });
  }
}

/** Compare two digests in constant time. */
export function digestsEqual(a, b) {
  return a.length === b.length && timingSafeEqual(a, b);
}
