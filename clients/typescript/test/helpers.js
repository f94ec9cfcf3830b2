// Test helpers: a log key, receipts signed with it, and a fake gate on 127.0.0.1.
// These are public test keys; never trust anything they sign outside tests.

import { createHash, createPrivateKey, sign } from "node:crypto";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { canonicalize, leafHash, nodeHash } from "../src/index.js";

export const REPOSITORY = fileURLToPath(new URL("../../../", import.meta.url));

export function readRepositoryFile(path, encoding = "utf8") {
  return readFileSync(REPOSITORY + path, encoding);
}

/** Derive a log key from a fixed label, as the project's test vectors do. */
export function testLogKey(name = "agentgate.test/ts-client") {
  const seed = createHash("sha256").update(`agentgate ts client tests: ${name}`).digest();
  // PKCS #8 wrapping of a raw Ed25519 seed (RFC 8410).
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  const jwk = privateKey.export({ format: "jwk" });
  const publicKey = Buffer.from(jwk.x, "base64url");
  const keyId = createHash("sha256").update(name).update(Buffer.from([0x0a, 0x01]))
    .update(publicKey).digest().subarray(0, 4);
  const verifierKey = `${name}+${keyId.toString("hex")}+` +
    Buffer.concat([Buffer.from([0x01]), publicKey]).toString("base64");
  return { name, privateKey, keyId, verifierKey };
}

/** Return the RFC 9162 root of `leaves` (leaf hashes). */
export function rootOf(leaves) {
  if (leaves.length === 1) {
    return leaves[0];
  }
  let split = 1;
  while (split * 2 < leaves.length) {
    split *= 2;
  }
  return nodeHash(rootOf(leaves.slice(0, split)), rootOf(leaves.slice(split)));
}

/** Return the audit path of leaf `index` among `leaves`. */
export function pathOf(index, leaves) {
  if (leaves.length === 1) {
    return [];
  }
  let split = 1;
  while (split * 2 < leaves.length) {
    split *= 2;
  }
  return index < split
    ? [...pathOf(index, leaves.slice(0, split)), rootOf(leaves.slice(split))]
    : [...pathOf(index - split, leaves.slice(split)), rootOf(leaves.slice(0, split))];
}

/** Sign a checkpoint note for `size` and `root` with `key`. */
export function signCheckpoint(key, size, root, origin = key.name) {
  const text = `${origin}\n${size}\n${root.toString("base64")}\n`;
  const signature = sign(null, Buffer.from(text), key.privateKey);
  const line = Buffer.concat([key.keyId, signature]).toString("base64");
  return `${text}\n\u2014 ${key.name} ${line}\n`;
}

/**
 * Return the receipt of `entries[index]` in a log holding `entries` (bytes or
 * records), signed by `key`.
 */
export function makeReceipt(key, entries, index = entries.length - 1) {
  const bytes = entries.map((entry) => Buffer.isBuffer(entry)
    ? entry : Buffer.from(canonicalize(entry)));
  const leaves = bytes.map(leafHash);
  const proof = pathOf(index, leaves).map((hash) => `${hash.toString("base64")}\n`);
  return `c2sp.org/tlog-proof@v1\nextra ${bytes[index].toString("base64")}\n` +
    `index ${index}\n${proof.join("")}\n` +
    signCheckpoint(key, leaves.length, rootOf(leaves));
}

/**
 * Start a fake gate on 127.0.0.1 whose responses come from `handle(request,
 * body)` returning `[status, json]`. Returns its URL, the requests it got,
 * and a close function.
 */
export async function fakeGate(handle) {
  const requests = [];
  const server = createServer((request, response) => {
    let text = "";
    request.on("data", (chunk) => { text += chunk; });
    request.on("end", async () => {
      const body = text ? JSON.parse(text) : undefined;
      requests.push({ method: request.method, url: request.url, body,
        authorization: request.headers.authorization });
      const [status, answer] = await handle(request, body, requests.length);
      response.writeHead(status, { "content-type": "application/json" });
      response.end(answer === undefined ? "" : JSON.stringify(answer));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
