// RFC 9162 Merkle tree hashing and inclusion proofs, with SHA-256.
// The hash and the 0x00 / 0x01 prefixes are fixed here; no proof names them.

import { createHash } from "node:crypto";

import { digestsEqual } from "./encoding.js";
import { VerificationError } from "./errors.js";

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** SHA-256(0x00 || entry): the hash of one leaf (RFC 9162 section 2.1.1). */
export function leafHash(entry) {
  return createHash("sha256").update(LEAF_PREFIX).update(entry).digest();
}

/** SHA-256(0x01 || left || right): the hash of an interior node. */
export function nodeHash(left, right) {
  return createHash("sha256").update(NODE_PREFIX).update(left).update(right)
    .digest();
}

/**
 * Compute the root that an inclusion proof leads to (RFC 9162 section
 * 2.1.3.2). Requires `0 <= index < size`, hashes of exactly 32 bytes, and a
 * proof of exactly the length that `index` and `size` call for.
 * @param {Buffer} leaf the leaf hash
 * @param {bigint} index 0-based leaf index
 * @param {bigint} size tree size
 * @param {Buffer[]} proof audit path, from the leaf's sibling up
 * @returns {Buffer}
 */
export function computeInclusionRoot(leaf, index, size, proof) {
  if (index < 0n || index >= size) {
    throw new VerificationError(
      `inclusion proof for index ${index} in a tree of size ${size}: the index ` +
      "must be below the size");
  }
  for (const [position, hash] of proof.entries()) {
    if (hash.length !== 32) {
      throw new VerificationError(
        `inclusion proof hash ${position} has ${hash.length} bytes; expected 32`);
    }
  }
  // 1. fn is the leaf's index, sn the last index, r the running hash.
  let fn = index;
  let sn = size - 1n;
  let root = leaf;
  for (const hash of proof) {
    // 2. a proof longer than the path is rejected, not ignored.
    if (sn === 0n) {
      throw new VerificationError(
        `inclusion proof for index ${index} in a tree of size ${size} is too ` +
        `long (${proof.length} hashes)`);
    }
    // 3. the sibling is on the left when fn is odd or fn is the last node.
    if ((fn & 1n) === 1n || fn === sn) {
      root = nodeHash(hash, root);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      root = nodeHash(root, hash);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // 4. the path must reach the root exactly.
  if (sn !== 0n) {
    throw new VerificationError(
      `inclusion proof for index ${index} in a tree of size ${size} is too ` +
      `short (${proof.length} hashes)`);
  }
  return root;
}

/** Verify an inclusion proof against `root`; throw `VerificationError` if not. */
export function verifyInclusion(leaf, index, size, proof, root) {
  const computed = computeInclusionRoot(leaf, index, size, proof);
  if (!digestsEqual(computed, root)) {
    throw new VerificationError(
      `inclusion proof for index ${index} in a tree of size ${size} leads to ` +
      `root ${computed.toString("hex")}, not the checkpoint's ` +
      `${root.toString("hex")}`);
  }
}
