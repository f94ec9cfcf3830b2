// The client against fake gates on 127.0.0.1 that sign receipts with a test
// key: what runs, what does not, and what is reported.

import assert from "node:assert/strict";
import { createServer } from "node:net";
import { test } from "node:test";

import {
  GateClient,
  GateError,
  GateRefusal,
  GateRequestError,
  GateUnavailable,
  guard,
  VerificationError,
} from "../src/index.js";
import { fakeGate, makeReceipt, testLogKey } from "./helpers.js";

const KEY = testLogKey();
const OTHER_KEY = testLogKey("agentgate.test/ts-client-impostor");
const TOKEN = "agent-token-0123456789abcdef";
const SESSION = "s-0123456789abcdef";

let decisionCount = 0;

/** Respond like a gate: sessions, decisions with `verdictFor(body)`, outcomes. */
function gateLike({ verdictFor = () => ["allow", []], recordFor = (record) => record,
  key = KEY, outcome = () => [200, { outcome: "o-1" }] } = {}) {
  return (request, body) => {
    if (request.url === "/v1/sessions") {
      return [201, { session: SESSION, purpose: body.purpose, chain: [] }];
    }
    if (request.url.endsWith("/decisions")) {
      const [verdict, reasons, extra = {}] = verdictFor(body);
      decisionCount += 1;
      const id = `d-${String(decisionCount).padStart(32, "0")}`;
      const record = recordFor({ type: "decision", version: 1, id, session: SESSION,
        tool: body.tool, verdict, reasons });
      return [200, { call_id: body.call_id, decision: id, verdict, reasons,
        receipt: makeReceipt(key, [record]), index: 0, leaf_hash: "", ...extra }];
    }
    if (request.url.endsWith("/outcomes")) {
      return outcome(body);
    }
    return [404, { error: "not_found", detail: request.url }];
  };
}

async function withGate(handler, body, options = {}) {
  const gate = await fakeGate(handler);
  try {
    const client = new GateClient({ url: gate.url, token: TOKEN, logKey: KEY.verifierKey,
      retries: 0, ...options });
    const session = await client.startSession({ purpose: "pay the rent" });
    return await body(session, gate);
  } finally {
    await gate.close();
  }
}

function counter() {
  const runs = { count: 0 };
  runs.tool = async ({ recipient, amount }) => {
    runs.count += 1;
    return { sent: amount, to: recipient };
  };
  return runs;
}

test("allowed call runs and its outcome is reported", async () => {
  const runs = counter();
  await withGate(gateLike(), async (session, gate) => {
    const send = session.guard(runs.tool, { tool: "send_money" });
    const result = await send({ recipient: "GB29", amount: 900 });

    assert.deepEqual(result, { sent: 900, to: "GB29" });
    assert.equal(runs.count, 1);
    const decided = gate.requests.find((r) => r.url.endsWith("/decisions"));
    assert.deepEqual(decided.body.arguments, { recipient: "GB29", amount: 900 });
    assert.equal(decided.authorization, `Bearer ${TOKEN}`);
    const reported = gate.requests.find((r) => r.url.endsWith("/outcomes"));
    assert.equal(reported.body.status, "ok");
    assert.deepEqual(reported.body.result, { sent: 900, to: "GB29" });
  });
});

test("denied call throws reasons and never runs", async () => {
  const runs = counter();
  const reasons = [{ rule: "delegation.scope", text: "no capability covers send_money" }];
  await withGate(gateLike({ verdictFor: () => ["deny", reasons] }), async (session, gate) => {
    const send = session.guard(runs.tool, { tool: "send_money" });
    await assert.rejects(send({ recipient: "GB29", amount: 900 }), (err) => {
      assert.ok(err instanceof GateRefusal);
      assert.equal(err.verdict, "deny");
      assert.deepEqual(err.reasons, reasons);
      assert.match(err.message, /denied this call to send_money/);
      assert.match(err.message, /- delegation.scope: no capability covers send_money/);
      return true;
    });
    assert.equal(runs.count, 0);
    assert.equal(gate.requests.filter((r) => r.url.endsWith("/outcomes")).length, 0);
  });
});

test("held call names its approval request", async () => {
  const runs = counter();
  const reasons = [{ rule: "value.large-amount", text: "amount 9000 is over 5000" }];
  const verdictFor = () => ["hold", reasons, { request: "q-1" }];
  await withGate(gateLike({ verdictFor }), async (session) => {
    const send = session.guard(runs.tool, { tool: "send_money" });
    await assert.rejects(send({ recipient: "GB29", amount: 9000 }),
      (err) => err instanceof GateRefusal && err.request === "q-1" &&
        /approval request q-1/.test(err.message));
    assert.equal(runs.count, 0);
  });
});

for (const [name, recordFor, pattern] of [
  ["another session", (r) => ({ ...r, session: "s-other" }), /session is "s-other"/],
  ["another tool", (r) => ({ ...r, tool: "get_balance" }), /tool is "get_balance"/],
  ["a deny the answer calls an allow", (r) => ({ ...r, verdict: "deny" }),
    /verdict is "deny"/],
  ["another decision id", (r) => ({ ...r, id: "d-forged" }), /id is "d-forged"/],
  ["an outcome record", (r) => ({ ...r, type: "outcome" }), /type is "outcome"/],
]) {
  test(`receipt of ${name} never runs the tool`, async () => {
    const runs = counter();
    await withGate(gateLike({ recordFor }), async (session) => {
      const send = session.guard(runs.tool, { tool: "send_money" });
      await assert.rejects(send({ recipient: "GB29", amount: 900 }),
        (err) => err instanceof VerificationError && pattern.test(err.message));
      assert.equal(runs.count, 0);
    });
  });
}

test("receipt signed by an unpinned key never runs the tool", async () => {
  const runs = counter();
  await withGate(gateLike({ key: OTHER_KEY }), async (session) => {
    const send = session.guard(runs.tool, { tool: "send_money" });
    await assert.rejects(send({ recipient: "GB29", amount: 900 }), VerificationError);
    assert.equal(runs.count, 0);
  });
});

test("answer without receipt never runs the tool", async () => {
  const runs = counter();
  const handler = (request, body) => request.url.endsWith("/decisions")
    ? [200, { call_id: body.call_id, verdict: "allow" }]
    : gateLike()(request, body);
  await withGate(handler, async (session) => {
    await assert.rejects(session.guard(runs.tool, { tool: "t" })({}),
      /no receipt or decision id/);
    assert.equal(runs.count, 0);
  });
});

test("unreachable gate never runs the tool", async () => {
  const runs = counter();
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve));
  const gate = await fakeGate(gateLike());
  try {
    const client = new GateClient({ url: gate.url, token: TOKEN,
      logKey: KEY.verifierKey, retries: 1 });
    const session = await client.startSession({ purpose: "pay the rent" });
    client.url = `http://127.0.0.1:${port}`;
    const send = session.guard(runs.tool, { tool: "send_money" });
    await assert.rejects(send({ recipient: "GB29", amount: 900 }),
      (err) => err instanceof GateUnavailable && /could not be reached/.test(err.message));
    assert.equal(runs.count, 0);
  } finally {
    await gate.close();
  }
});

test("unsealed decision never runs the tool", async () => {
  const runs = counter();
  const handler = (request, body) => request.url.endsWith("/decisions")
    ? [503, { error: "unavailable", detail: "the decision could not be sealed" }]
    : gateLike()(request, body);
  await withGate(handler, async (session) => {
    await assert.rejects(session.guard(runs.tool, { tool: "t" })({}),
      (err) => err instanceof GateUnavailable && /could not be sealed/.test(err.message));
    assert.equal(runs.count, 0);
  });
});

test("retry after 503 resends the same call id", async () => {
  const runs = counter();
  const inner = gateLike();
  let failed = false;
  const handler = (request, body) => {
    if (request.url.endsWith("/decisions") && !failed) {
      failed = true;
      return [503, { error: "unavailable", detail: "try again" }];
    }
    return inner(request, body);
  };
  await withGate(handler, async (session, gate) => {
    await session.guard(runs.tool, { tool: "send_money" })({ recipient: "x", amount: 1 });
    const ids = gate.requests.filter((r) => r.url.endsWith("/decisions"))
      .map((r) => r.body.call_id);
    assert.equal(ids.length, 2);
    assert.equal(ids[0], ids[1]);
    assert.equal(runs.count, 1);
  }, { retries: 1 });
});

test("rejected request is not retried", async () => {
  const handler = (request, body) => request.url.endsWith("/decisions")
    ? [400, { error: "invalid_request", detail: "arguments: not an object" }]
    : gateLike()(request, body);
  await withGate(handler, async (session, gate) => {
    await assert.rejects(session.decide("t", {}), (err) =>
      err instanceof GateRequestError && err.status === 400 &&
      err.code === "invalid_request" && /not an object/.test(err.message));
    assert.equal(gate.requests.filter((r) => r.url.endsWith("/decisions")).length, 1);
  }, { retries: 2 });
});

test("tool error is reported and rethrown", async () => {
  await withGate(gateLike(), async (session, gate) => {
    const failing = session.guard(async () => { throw new RangeError("too much"); },
      { tool: "send_money" });
    await assert.rejects(failing({}), RangeError);
    const reported = gate.requests.find((r) => r.url.endsWith("/outcomes"));
    assert.equal(reported.body.status, "error");
    assert.equal(reported.body.error, "RangeError");
  });
});

test("failed outcome report keeps the result", async () => {
  const runs = counter();
  const seen = [];
  const outcome = () => [500, { error: "internal_error", detail: "failed" }];
  await withGate(gateLike({ outcome }), async (session) => {
    const result = await session.guard(runs.tool, { tool: "send_money" })(
      { recipient: "x", amount: 1 });
    assert.deepEqual(result, { sent: 1, to: "x" });
    assert.equal(session.unreported.length, 1);
    assert.equal(seen.length, 1);
    assert.match(seen[0].message, /responded with 500/);
  }, { onOutcomeError: (err) => seen.push(err) });
});

test("digest results report only a hash", async () => {
  await withGate(gateLike(), async (session, gate) => {
    await session.guard(async () => ({ balance: 1200 }), { tool: "get_balance" })({});
    const reported = gate.requests.find((r) => r.url.endsWith("/outcomes"));
    assert.equal(reported.body.result, undefined);
    assert.match(reported.body.result_sha256, /^[0-9a-f]{64}$/);
  }, { results: "digest" });
});

test("positional arguments need names", async () => {
  const runs = counter();
  await withGate(gateLike(), async (session, gate) => {
    const unnamed = session.guard((a, b) => a + b, { tool: "add" });
    await assert.rejects(unnamed(1, 2), (err) => err instanceof GateError &&
      /2 positional arguments/.test(err.message));
    const named = guard((a, b) => a + b, { tool: "add", session,
      argumentNames: ["a", "b"] });
    assert.equal(await named(1, 2), 3);
    const decided = gate.requests.filter((r) => r.url.endsWith("/decisions"));
    assert.deepEqual(decided.at(-1).body.arguments, { a: 1, b: 2 });
    assert.equal(runs.count, 0);
  });
});

test("client needs a pinned log key", () => {
  assert.throws(() => new GateClient({ url: "http://127.0.0.1:1", token: TOKEN,
    logKey: "not-a-key" }), VerificationError);
});
