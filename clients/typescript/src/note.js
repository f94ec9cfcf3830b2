// C2SP signed notes with Ed25519, verifier keys, and tlog-checkpoint bodies.

import { createHash, createPublicKey, verify } from "node:crypto";

import { decodeBase64, decodeUtf8, digestsEqual, parseDecimal } from "./encoding.js";
import { VerificationError } from "./errors.js";

const ED25519 = 0x01;
const MAX_SIGNATURES = 100;
const SIGNATURE_PREFIX = "\u2014 ";
const EMPTY_ROOT = createHash("sha256").digest();
const KEY_NAME = /^[\x21-\x2a\x2c-\x7e]+$/; // printable ASCII, no space or "+"
const CONTROL = /[\x00-\x09\x0b-\x1f\x7f]/; // every control character but "\n"

/**
 * @typedef {object} VerifierKey
 * @property {string} name
 * @property {Buffer} keyId the first 4 bytes of SHA-256(name || 0x0A || 0x01 || key)
 * @property {import("node:crypto").KeyObject} publicKey
 * @property {string} text the key as given
 */

function keyId(name, publicKey) {
  return createHash("sha256")
    .update(Buffer.from(name, "utf8"))
    .update(Buffer.from([0x0a, ED25519]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

/**
 * Parse a verifier key `<name>+<key id hex>+<base64(0x01 || public key)>`,
 * checking that the key id matches the key.
 * @param {string} text
 * @returns {VerifierKey}
 */
export function parseVerifierKey(text) {
  // The base64 may contain "+" too, so only the first two separate fields.
  const parts = typeof text === "string" ? text.split("+") : [];
  if (parts.length < 3) {
    throw new VerificationError(
      `verifier key ${JSON.stringify(text)}: expected name+hex8+base64`);
  }

  const [name, hexId] = parts;
  const encoded = parts.slice(2).join("+");
  if (!KEY_NAME.test(name) || !/^[0-9a-f]{8}$/.test(hexId)) {
    throw new VerificationError(
      `verifier key ${JSON.stringify(text)}: expected a name of printable ASCII ` +
      "without spaces or +, and a key id of 8 lowercase hex digits");
  }
  const bytes = decodeBase64(encoded, `verifier key ${name}`);
  if (bytes.length !== 33 || bytes[0] !== ED25519) {
    throw new VerificationError(
      `verifier key ${name}: expected 0x01 and a 32-byte Ed25519 key, got ` +
      `${bytes.length} bytes`);
  }

  const raw = bytes.subarray(1);
  const expected = keyId(name, raw).toString("hex");
  if (expected !== hexId) {
    throw new VerificationError(
      `verifier key ${name}: key id ${hexId} does not match the key ` +
      `(expected ${expected})`);
  }
  const publicKey = createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
  return { name, keyId: Buffer.from(hexId, "hex"), publicKey, text };
}

/**
 * Open a signed note: check its form and the signatures of the known keys.
 *
 * 1. reject a note that is not UTF-8, contains a control character other
 *    than newline, or does not end in a newline;
 * 2. split the text from the signatures at the last blank line;
 * 3. parse each signature line, at most 100;
 * 4. ignore signatures by unknown keys (identified by name and key id), and
 *    reject the note if a known key's signature fails;
 * 5. require at least one known key's signature, counting each key once.
 * @param {string | Uint8Array} note
 * @param {VerifierKey[]} keys
 * @returns {{text: string, keyNames: string[]}}
 */
export function openNote(note, keys) {
  // 1. the form of the whole note
  const whole = typeof note === "string" ? note : decodeUtf8(note, "the note");
  if (CONTROL.test(whole)) {
    throw new VerificationError("the note contains a control character other " +
      "than newline (a carriage return, for example)");
  }
  if (!whole.endsWith("\n")) {
    throw new VerificationError("the note does not end with a newline");
  }

  // 2. text and signatures
  const split = whole.lastIndexOf("\n\n");
  if (split < 0) {
    throw new VerificationError("the note has no blank line before its signatures");
  }
  const text = whole.slice(0, split + 1);
  const lines = whole.slice(split + 2, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) {
    throw new VerificationError(
      `the note has ${lines.length} signature lines; at most ${MAX_SIGNATURES}`);
  }

  // 3. and 4. each signature line
  const message = Buffer.from(text, "utf8");
  const verified = new Map();
  for (const line of lines) {
    const fields = line.startsWith(SIGNATURE_PREFIX)
      ? line.slice(SIGNATURE_PREFIX.length).split(" ") : [];
    if (fields.length !== 2 || !KEY_NAME.test(fields[0])) {
      throw new VerificationError(
        `malformed signature line ${JSON.stringify(line)}; expected ` +
        "\"\u2014 <key name> <base64>\"");
    }
    const [name, encoded] = fields;
    const signature = decodeBase64(encoded, `the signature by ${name}`);
    if (signature.length < 5) {
      throw new VerificationError(
        `the signature by ${name} has ${signature.length} bytes; expected a key ` +
        "id and a signature");
    }
    const id = signature.subarray(0, 4);
    const key = keys.find((known) => known.name === name &&
      digestsEqual(known.keyId, id));
    if (key === undefined) {
      continue;
    }
    const bytes = signature.subarray(4);
    if (bytes.length !== 64 || !verify(null, message, key.publicKey, bytes)) {
      throw new VerificationError(
        `the signature by known key ${name}+${id.toString("hex")} does not verify`);
    }
    verified.set(key.text, name);
  }

  // 5. at least one known key
  if (verified.size === 0) {
    throw new VerificationError(
      "no known key signed the note; expected a signature by " +
      keys.map((key) => key.text.split("+").slice(0, 2).join("+")).join(" or "));
  }
  return { text, keyNames: [...verified.values()] };
}

/**
 * Parse a checkpoint body (C2SP tlog-checkpoint): origin, tree size, root
 * hash, then extension lines. With `origin`, any other origin is rejected.
 * @param {string} text the note text, ending in a newline
 * @param {string} [origin]
 * @returns {{origin: string, size: bigint, root: Buffer, extensions: string[]}}
 */
export function parseCheckpoint(text, origin) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines.at(-1) !== "") {
    throw new VerificationError(
      "a checkpoint needs an origin, a size and a root hash line, each ending " +
      "in a newline");
  }
  const [name, sizeText, rootText, ...rest] = lines;
  if (name === "") {
    throw new VerificationError("the checkpoint's origin line is empty");
  }
  if (origin !== undefined && name !== origin) {
    throw new VerificationError(
      `the checkpoint is for log ${JSON.stringify(name)}, expected ` +
      JSON.stringify(origin));
  }
  const size = parseDecimal(sizeText, "checkpoint size", 1n << 63n);
  const root = decodeBase64(rootText, "checkpoint root hash");
  if (root.length !== 32) {
    throw new VerificationError(
      `checkpoint root hash has ${root.length} bytes; expected 32`);
  }
  if (size === 0n && !digestsEqual(root, EMPTY_ROOT)) {
    throw new VerificationError(
      "a checkpoint of size 0 must carry the empty tree's root, SHA-256 of " +
      "the empty string");
  }
  return { origin: name, size, root, extensions: rest.slice(0, -1) };
}
