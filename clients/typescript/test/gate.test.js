// The client against a real gate: `agentgate gate serve`, started by
// tests/clients/test_typescript.py, which passes its URL, agent token and log
// key in the environment. Without them these tests skip.

import assert from "node:assert/strict";
import { test } from "node:test";

import { GateClient, GateRefusal, verifyReceipt } from "../src/index.js";

const URL = process.env.AGENTGATE_GATE_URL;
const TOKEN = process.env.AGENTGATE_GATE_TOKEN;
const LOG_KEY = process.env.AGENTGATE_LOG_KEY;
const skip = URL && TOKEN && LOG_KEY ? false
  : "set AGENTGATE_GATE_URL, AGENTGATE_GATE_TOKEN and AGENTGATE_LOG_KEY " +
    "(tests/clients/test_typescript.py does)";
const IBAN = "GB29NWBK60161331926819";
const PURPOSE = `pay the rent of 900 to ${IBAN}`;

async function session() {
  const client = new GateClient({ url: URL, token: TOKEN, logKey: LOG_KEY });
  return client.startSession({ purpose: PURPOSE });
}

function bank() {
  const runs = { get_balance: 0, send_money: 0, delete_file: 0 };
  return {
    runs,
    getBalance: async ({ account }) => { runs.get_balance += 1; return { account, balance: 1200 }; },
    sendMoney: async ({ recipient, amount }) => { runs.send_money += 1; return `sent ${amount} to ${recipient}`; },
    deleteFile: async ({ path }) => { runs.delete_file += 1; return `deleted ${path}`; },
  };
}

test("allowed call runs under a verified receipt", { skip }, async () => {
  const agent = await session();
  const tools = bank();
  const send = agent.guard(tools.sendMoney, { tool: "send_money" });

  const result = await send({ recipient: IBAN, amount: 900 });

  assert.equal(result, `sent 900 to ${IBAN}`);
  assert.equal(tools.runs.send_money, 1);
  assert.deepEqual(agent.unreported, []);
  await agent.end();
});

test("call outside the delegation is denied with reasons", { skip }, async () => {
  const agent = await session();
  const tools = bank();
  const remove = agent.guard(tools.deleteFile, { tool: "delete_file" });

  await assert.rejects(remove({ path: "/home/user/notes" }), (err) => {
    assert.ok(err instanceof GateRefusal);
    assert.equal(err.verdict, "deny");
    assert.equal(err.reasons[0].rule, "delegation.scope");
    assert.match(err.message, /- delegation.scope: /);
    assert.equal(verifyReceipt(err.receipt, [LOG_KEY]).record.verdict, "deny");
    return true;
  });
  assert.equal(tools.runs.delete_file, 0);
  await agent.end();
});

test("large payment is held", { skip }, async () => {
  const agent = await session();
  const tools = bank();
  const send = agent.guard(tools.sendMoney, { tool: "send_money" });

  await assert.rejects(send({ recipient: IBAN, amount: 9000 }),
    (err) => err instanceof GateRefusal && err.verdict === "hold" &&
      err.reasons.some((reason) => reason.rule === "value.large-amount"));
  assert.equal(tools.runs.send_money, 0);
  await agent.end();
});

test("parallel calls each get their own decision", { skip }, async () => {
  const agent = await session();
  const tools = bank();
  const balance = agent.guard(tools.getBalance, { tool: "get_balance" });

  await Promise.all(["checking", "savings", "joint"].map((account) => balance({ account })));
  const decisions = await Promise.all([1, 2, 3].map((n) =>
    agent.decide("get_balance", { account: `account-${n}` })));

  assert.equal(tools.runs.get_balance, 3);
  assert.equal(new Set(decisions.map((decision) => decision.id)).size, 3);
  assert.equal(new Set(decisions.map((decision) => decision.index)).size, 3);
  await agent.end();
});

test("a retried call id returns the first decision", { skip }, async () => {
  const agent = await session();

  const first = await agent.decide("get_balance", { account: "checking" }, { callId: "retry-1" });
  const again = await agent.decide("get_balance", { account: "checking" }, { callId: "retry-1" });

  assert.equal(again.id, first.id);
  assert.equal(again.index, first.index);
  await agent.end();
});
