import assert from "node:assert/strict";
import { test } from "node:test";

import { parseReceipt, VerificationError, verifyReceipt } from "../src/index.js";
import { makeReceipt, readRepositoryFile, testLogKey } from "./helpers.js";

const EXAMPLE = readRepositoryFile("specs/vectors/receipt-example.tlog-proof");
const EXAMPLE_KEY = readRepositoryFile("specs/vectors/example-log.pub").trim();
const DECISION = readRepositoryFile("specs/vectors/decision-example.json");
const KEY = testLogKey();
const OTHER_KEY = testLogKey("agentgate.test/another-log");

/** Replace line `number` (0-based) of the example receipt. */
function withLine(number, replace) {
  const lines = EXAMPLE.split("\n");
  lines.splice(number, 1, ...replace(lines[number]));
  return lines.join("\n");
}

test("example receipt verifies", () => {
  const verified = verifyReceipt(EXAMPLE, [EXAMPLE_KEY]);
  assert.equal(verified.index, 5n);
  assert.equal(verified.entry.toString("utf8"), DECISION);
  assert.equal(verified.record.verdict, "allow");
  assert.equal(verified.leafHash.toString("hex"),
    "0531e0d0d33ef3e5c86f5ff7414e5ca14758827411aa832567da30c9e9b4b407");
  assert.equal(verified.checkpoint.size, 7n);
});

test("receipt with index off by one rejected", () => {
  assert.throws(() => verifyReceipt(withLine(2, () => ["index 4"]), [EXAMPLE_KEY]),
    /leads to root/);
});

test("receipt with index beyond size rejected", () => {
  assert.throws(() => verifyReceipt(withLine(2, () => ["index 7"]), [EXAMPLE_KEY]),
    /not below the checkpoint's size/);
});

test("receipt with leading zero index rejected", () => {
  assert.throws(() => verifyReceipt(withLine(2, () => ["index 05"]), [EXAMPLE_KEY]),
    /without sign or leading zeros/);
});

test("receipt with extra proof node rejected", () => {
  assert.throws(() => verifyReceipt(withLine(3, (line) => [line, line]), [EXAMPLE_KEY]),
    /too long/);
});

test("receipt with truncated proof rejected", () => {
  assert.throws(() => verifyReceipt(withLine(5, () => []), [EXAMPLE_KEY]),
    /too short/);
});

test("receipt with swapped proof nodes rejected", () => {
  const lines = EXAMPLE.split("\n");
  [lines[3], lines[4]] = [lines[4], lines[3]];
  assert.throws(() => verifyReceipt(lines.join("\n"), [EXAMPLE_KEY]), /leads to root/);
});

test("receipt with tampered entry rejected", () => {
  const forged = Buffer.from(DECISION.replace('"verdict":"allow"', '"verdict":"alloW"'));
  assert.throws(() => verifyReceipt(
    withLine(1, () => [`extra ${forged.toString("base64")}`]), [EXAMPLE_KEY]),
  /leads to root/);
});

test("receipt without extra line rejected", () => {
  assert.throws(() => verifyReceipt(withLine(1, () => []), [EXAMPLE_KEY]),
    /needs an extra line/);
});

test("receipt with other header rejected", () => {
  assert.throws(() => verifyReceipt(withLine(0, () => ["c2sp.org/tlog-proof@v2"]),
    [EXAMPLE_KEY]), /expected c2sp.org\/tlog-proof@v1/);
});

test("receipt under unknown key rejected", () => {
  assert.throws(() => verifyReceipt(EXAMPLE, [KEY.verifierKey],
    { origin: "agentgate.example/public-test-log" }), /no known key signed/);
});

test("receipt of other origin rejected", () => {
  assert.throws(() => verifyReceipt(EXAMPLE, [EXAMPLE_KEY], { origin: "other.example/log" }),
    /expected "other.example\/log"/);
});

test("receipt with CRLF line ends rejected", () => {
  assert.throws(() => verifyReceipt(EXAMPLE.replaceAll("\n", "\r\n"), [EXAMPLE_KEY]),
    VerificationError);
});

test("receipt of a three-record log verifies", () => {
  const records = [{ n: 1, type: "a" }, { n: 2, type: "b" }, { n: 3, type: "c" }];
  for (let index = 0; index < 3; index++) {
    const verified = verifyReceipt(makeReceipt(KEY, records, index), [KEY.verifierKey]);
    assert.deepEqual(verified.record, records[index]);
  }
});

test("receipt signed by another key rejected", () => {
  const receipt = makeReceipt(OTHER_KEY, [{ n: 1 }]);
  assert.throws(() => verifyReceipt(receipt, [KEY.verifierKey],
    { origin: OTHER_KEY.name }), /no known key signed/);
});

for (const [name, bytes] of [
  ["duplicate member names", '{"a":1,"a":2}'],
  ["white space", '{"a": 1}'],
  ["unsorted members", '{"b":1,"a":2}'],
  ["lone surrogate", '{"a":"\\ud800"}'],
  ["integer beyond 2^53", '{"a":9007199254740993}'],
  ["an array", "[1,2]"],
  ["invalid UTF-8", Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])],
]) {
  test(`entry with ${name} rejected`, () => {
    const entry = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    assert.throws(() => verifyReceipt(makeReceipt(KEY, [entry]), [KEY.verifierKey]),
      VerificationError);
  });
}

test("parsed receipt keeps the checkpoint verbatim", () => {
  const parsed = parseReceipt(EXAMPLE);
  assert.equal(parsed.checkpoint, readRepositoryFile("specs/vectors/checkpoint-example.txt"));
  assert.equal(parsed.proof.length, 3);
});
