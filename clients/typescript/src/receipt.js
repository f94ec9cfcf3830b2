// Receipts: C2SP tlog-proof@v1 files whose extra line carries the record.

import { decodeBase64, parseDecimal } from "./encoding.js";
import { VerificationError } from "./errors.js";
import { parseCanonical } from "./jcs.js";
import { leafHash, verifyInclusion } from "./merkle.js";
import { openNote, parseCheckpoint, parseVerifierKey } from "./note.js";

const HEADER = "c2sp.org/tlog-proof@v1";

/**
 * Split a receipt into its entry, index, proof and checkpoint note.
 * @param {string} text
 */
export function parseReceipt(text) {
  if (typeof text !== "string") {
    throw new VerificationError("the receipt must be text");
  }
  const blank = text.indexOf("\n\n");
  if (blank < 0) {
    throw new VerificationError("the receipt has no blank line before its checkpoint");
  }
  const lines = text.slice(0, blank).split("\n");
  if (lines[0] !== HEADER) {
    throw new VerificationError(
      `the receipt starts with ${JSON.stringify(lines[0])}, expected ${HEADER}`);
  }
  if (lines.length < 3 || !lines[1].startsWith("extra ") ||
      !lines[2].startsWith("index ")) {
    throw new VerificationError(
      "the receipt needs an extra line carrying its entry, then an index line");
  }
  const entry = decodeBase64(lines[1].slice("extra ".length), "the receipt's extra");
  const index = parseDecimal(lines[2].slice("index ".length), "the receipt's index",
    1n << 63n);
  const proof = lines.slice(3).map((line, position) =>
    decodeBase64(line, `proof hash ${position}`));
  return { entry, index, proof, checkpoint: text.slice(blank + 2) };
}

/**
 * Verify a receipt offline against the pinned log keys.
 *
 * 1. parse the header, extra, index and proof lines;
 * 2. open the checkpoint note with the keys and parse it; check the origin;
 * 3. check index < size;
 * 4. hash the entry as a leaf and verify the inclusion proof to the root;
 * 5. check that the entry is one JSON object in RFC 8785 form.
 * @param {string} text
 * @param {Array<string | import("./note.js").VerifierKey>} logKeys
 * @param {{origin?: string}} [options] the origin defaults to the keys' name
 */
export function verifyReceipt(text, logKeys, options = {}) {
  const keys = logKeys.map((key) => typeof key === "string" ? parseVerifierKey(key) : key);
  if (keys.length === 0) {
    throw new VerificationError("pin at least one log verifier key");
  }
  const origin = options.origin ?? keys[0].name;
  // 1.
  const receipt = parseReceipt(text);
  // 2.
  const note = openNote(receipt.checkpoint, keys);
  const checkpoint = parseCheckpoint(note.text, origin);
  // 3. and 4.
  if (receipt.index >= checkpoint.size) {
    throw new VerificationError(
      `the receipt's index ${receipt.index} is not below the checkpoint's size ` +
      `${checkpoint.size}`);
  }
  const leaf = leafHash(receipt.entry);
  verifyInclusion(leaf, receipt.index, checkpoint.size, receipt.proof, checkpoint.root);
  // 5.
  const record = parseCanonical(receipt.entry);
  return {
    index: receipt.index,
    entry: receipt.entry,
    leafHash: leaf,
    record,
    checkpoint,
    keyNames: note.keyNames,
  };
}
