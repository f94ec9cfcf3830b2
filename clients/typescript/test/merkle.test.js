import assert from "node:assert/strict";
import { test } from "node:test";

import {
  computeInclusionRoot,
  leafHash,
  VerificationError,
  verifyInclusion,
} from "../src/index.js";
import { pathOf, readRepositoryFile, rootOf } from "./helpers.js";

const TREE = JSON.parse(readRepositoryFile(
  "tests/vectors/rfc6962/rfc6962-reference-tree.json"));
const hex = (text) => Buffer.from(text, "hex");

function reference(index, size) {
  const vector = TREE.inclusion_proofs.find((proof) =>
    proof.leaf_index === index && proof.tree_size === size);
  return {
    leaf: hex(vector.leaf_hash),
    proof: vector.proof.map(hex),
    root: hex(vector.root),
  };
}

test("every reference inclusion proof verifies", () => {
  assert.ok(TREE.inclusion_proofs.length >= 36);
  for (const vector of TREE.inclusion_proofs) {
    verifyInclusion(hex(vector.leaf_hash), BigInt(vector.leaf_index),
      BigInt(vector.tree_size), vector.proof.map(hex), hex(vector.root));
  }
});

test("leaf hash of reference inputs", () => {
  TREE.leaf_inputs_hex.forEach((input, position) => {
    assert.equal(leafHash(hex(input)).toString("hex"), TREE.leaf_hashes[position]);
  });
});

test("computed roots match a recursive tree for sizes up to 70", () => {
  for (let size = 1; size <= 70; size++) {
    const leaves = Array.from({ length: size }, (_, n) => leafHash(Buffer.from([n])));
    const root = rootOf(leaves);
    for (let index = 0; index < size; index++) {
      const computed = computeInclusionRoot(leaves[index], BigInt(index),
        BigInt(size), pathOf(index, leaves));
      assert.deepEqual(computed, root, `index ${index} of size ${size}`);
    }
  }
});

test("index off by one rejected", () => {
  const { leaf, proof, root } = reference(2, 7);
  assert.throws(() => verifyInclusion(leaf, 3n, 7n, proof, root), VerificationError);
});

test("index equal to size rejected", () => {
  const { leaf, proof, root } = reference(6, 7);
  assert.throws(() => verifyInclusion(leaf, 7n, 7n, proof, root),
    /index must be below the size/);
});

test("extra proof node rejected", () => {
  const { leaf, proof, root } = reference(2, 7);
  assert.throws(() => verifyInclusion(leaf, 2n, 7n, [...proof, proof[0]], root),
    /too long/);
});

test("truncated proof rejected", () => {
  const { leaf, proof, root } = reference(2, 7);
  assert.throws(() => verifyInclusion(leaf, 2n, 7n, proof.slice(0, -1), root),
    /too short/);
});

test("wrong root rejected", () => {
  const { leaf, proof } = reference(2, 7);
  assert.throws(() => verifyInclusion(leaf, 2n, 7n, proof, hex(TREE.roots_by_tree_size["6"])),
    /leads to root/);
});

test("proof hash of 31 bytes rejected", () => {
  const { leaf, proof, root } = reference(2, 7);
  const short = [proof[0].subarray(0, 31), ...proof.slice(1)];
  assert.throws(() => verifyInclusion(leaf, 2n, 7n, short, root), /has 31 bytes/);
});
