import assert from "node:assert/strict";
import { test } from "node:test";

import {
  openNote,
  parseCheckpoint,
  parseVerifierKey,
  VerificationError,
} from "../src/index.js";
import { readRepositoryFile } from "./helpers.js";

const VECTORS = JSON.parse(readRepositoryFile(
  "tests/vectors/signed-note/signed-note-vectors.json"));
const EXAMPLE_KEY = readRepositoryFile("specs/vectors/example-log.pub").trim();

function openCase(vector) {
  const keys = vector.known_verifier_keys.map(parseVerifierKey);
  const note = Buffer.from(vector.signed_note_hex, "hex");
  const opened = openNote(note, keys);
  if (vector.layer === "checkpoint") {
    return { opened, checkpoint: parseCheckpoint(opened.text, vector.expected_origin) };
  }
  return { opened };
}

for (const vector of VECTORS.cases) {
  test(`signed-note vector ${vector.id}`, () => {
    if (vector.expected === "ok") {
      const { opened, checkpoint } = openCase(vector);
      if (vector.expected_verified_key_names) {
        assert.deepEqual(opened.keyNames, vector.expected_verified_key_names);
      }
      if (vector.checkpoint_expectation) {
        const expected = vector.checkpoint_expectation;
        assert.equal(checkpoint.origin, expected.origin);
        assert.equal(checkpoint.size, BigInt(expected.size));
        assert.equal(checkpoint.root.toString("hex"), expected.root_hex);
        assert.deepEqual(checkpoint.extensions, expected.extensions);
      }
    } else {
      assert.throws(() => openCase(vector), VerificationError);
    }
  });
}

test("published note facts verify", () => {
  for (const fact of VECTORS.facts.filter((item) => item.expected === "ok")) {
    const key = parseVerifierKey(fact.verifier_key);
    assert.equal(key.keyId.toString("hex"), fact.expected_key_id_hex);
    assert.deepEqual(openNote(fact.signed_note, [key]).keyNames, [fact.key_name]);
  }
});

test("example checkpoint verifies", () => {
  const note = readRepositoryFile("specs/vectors/checkpoint-example.txt");
  const opened = openNote(note, [parseVerifierKey(EXAMPLE_KEY)]);
  const checkpoint = parseCheckpoint(opened.text, "agentgate.example/public-test-log");
  assert.equal(checkpoint.size, 7n);
  assert.equal(checkpoint.root.toString("hex"),
    "d438e1a8eb7fe2328651be4fdbbbfb9701735a2f7c83793a7f9928cde23cf7b8");
});

test("verifier key with wrong key id rejected", () => {
  const wrong = EXAMPLE_KEY.replace("+9806ccff+", "+9806ccfe+");
  assert.throws(() => parseVerifierKey(wrong), /does not match the key/);
});

test("verifier key without three parts rejected", () => {
  assert.throws(() => parseVerifierKey("agentgate.example+AWCNq6"),
    /expected name\+hex8\+base64/);
});
