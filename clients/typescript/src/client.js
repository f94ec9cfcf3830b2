// A client of the gate's HTTP API (specs/gate-api.md) that verifies every
// receipt itself and runs a tool only after a verified allow.

import { createHash, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";

import {
  GateError,
  GateRefusal,
  GateRequestError,
  GateUnavailable,
  VerificationError,
} from "./errors.js";
import { canonicalize } from "./jcs.js";
import { parseVerifierKey } from "./note.js";
import { verifyReceipt } from "./receipt.js";

const ERROR_NAME = /^[A-Za-z_][A-Za-z0-9_.]{0,127}$/;
const RETRYABLE = new Set([502, 503, 504]);

/**
 * @typedef {object} Decision
 * @property {string} id the sealed decision record's id
 * @property {string} callId
 * @property {string} tool
 * @property {"allow" | "deny" | "hold"} verdict
 * @property {{rule: string, text: string}[]} reasons
 * @property {string | null} request the approval request of a hold, if any
 * @property {number} index leaf index of the record
 * @property {string} receipt the verified tlog-proof@v1 text
 * @property {Record<string, unknown>} record the sealed record
 */

/** The gate's HTTP API, with the log keys that every receipt must verify under. */
export class GateClient {
  /**
   * @param {object} options
   * @param {string} options.url the gate's base URL, e.g. http://127.0.0.1:8090
   * @param {string} options.token the agents' bearer token
   * @param {string | string[]} options.logKey the log's verifier key(s), pinned
   * @param {string} [options.origin] the log's origin; default: the key's name
   * @param {number} [options.timeoutMs] per request, default 10000
   * @param {number} [options.retries] retries of a request that failed in
   *   transit or got 502-504, default 2; decisions and outcomes are idempotent
   * @param {"value" | "digest"} [options.results] report each tool result
   *   as JSON ("value", the default) or only its SHA-256 ("digest")
   * @param {(error: Error, decision: Decision) => void} [options.onOutcomeError]
   *   called when an outcome could not be reported; the tool's result is
   *   still returned
   * @param {typeof fetch} [options.fetch]
   */
  constructor({ url, token, logKey, origin, timeoutMs = 10_000, retries = 2,
    results = "value", onOutcomeError, fetch = globalThis.fetch }) {
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new TypeError(`url must be http://HOST:PORT or https://..., got ${url}`);
    }
    if (typeof token !== "string" || token.length < 16) {
      throw new TypeError("token must be the gate's agent token (16 characters or more)");
    }
    if (results !== "value" && results !== "digest") {
      throw new TypeError(`results must be "value" or "digest", got ${results}`);
    }
    this.url = url.replace(/\/+$/, "");
    this.logKeys = (Array.isArray(logKey) ? logKey : [logKey]).map(parseVerifierKey);
    if (this.logKeys.length === 0) {
      throw new TypeError("pin at least one log verifier key");
    }
    this.origin = origin ?? this.logKeys[0].name;
    this.results = results;
    this.onOutcomeError = onOutcomeError;
    this._token = token;
    this._timeoutMs = timeoutMs;
    this._retries = retries;
    this._fetch = fetch;
  }

  /**
   * Start a session for a declared purpose.
   * @param {{purpose: string, principalValues?: string[], chain?: object[]}} options
   */
  async startSession({ purpose, principalValues = [], chain }) {
    const body = { purpose, principal_values: principalValues };
    if (chain !== undefined) {
      body.chain = chain;
    }
    // Not retried: a retry after a lost response would open a second session.
    const response = await this.request("POST", "/v1/sessions", body, 0);
    if (typeof response?.session !== "string") {
      throw new VerificationError("the gate's session response has no session id");
    }
    return new GateSession(this, response.session);
  }

  /**
   * Send one request; retry failures in transit and 502-504 responses.
   * @returns {Promise<any>} the JSON body, or null for 204
   */
  async request(method, path, body, retries = this._retries) {
    let failure;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
      let response;
      try {
        response = await this._fetch(this.url + path, {
          method,
          headers: {
            authorization: `Bearer ${this._token}`,
            "content-type": "application/json",
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: AbortSignal.timeout(this._timeoutMs),
        });
      } catch (err) {
        failure = new GateUnavailable(
          `the gate at ${this.url} could not be reached (${err.cause?.code ?? err.name}: ` +
          `${err.message})`, { cause: err });
        continue;
      }
      if (response.status === 204) {
        return null;
      }
      const text = await response.text();
      let answer;
      try {
        answer = JSON.parse(text);
      } catch {
        answer = undefined;
      }
      if (response.ok && answer !== undefined) {
        return answer;
      }
      const detail = answer?.detail ?? text.slice(0, 200);
      if (RETRYABLE.has(response.status)) {
        failure = new GateUnavailable(
          `the gate responded with ${response.status} ${answer?.error ?? ""}: ${detail}`);
        continue;
      }
      if (response.ok) {
        throw new VerificationError(`the gate's response to ${method} ${path} is not JSON`);
      }
      if (response.status >= 500) {
        throw new GateUnavailable(`the gate responded with ${response.status}: ${detail}`);
      }
      throw new GateRequestError(`the gate rejected ${method} ${path}: ${detail}`,
        { status: response.status, code: answer?.error ?? "unknown" });
    }
    throw failure;
  }
}

/** One agent run for one purpose: decide, run, and report each call. */
export class GateSession {
  /** @param {GateClient} client @param {string} id */
  constructor(client, id) {
    this.client = client;
    this.id = id;
    /** @type {Decision[]} allowed calls whose outcome could not be reported */
    this.unreported = [];
  }

  /**
   * Ask the gate to decide one call, and verify the sealed decision.
   * @param {string} tool
   * @param {Record<string, unknown>} args
   * @param {{callId?: string, approval?: string}} [options]
   * @returns {Promise<Decision>}
   */
  async decide(tool, args, { callId = randomUUID(), approval } = {}) {
    const body = { call_id: callId, tool, arguments: args };
    if (approval !== undefined) {
      body.approval = approval;
    }
    const answer = await this.client.request(
      "POST", `/v1/sessions/${encodeURIComponent(this.id)}/decisions`, body);
    return this._verifyDecision(answer, tool, callId);
  }

  /**
   * Decide a call, run `run` only after a verified allow, and report its outcome.
   * A refusal throws `GateRefusal`; a gate that cannot be reached, or a
   * receipt that fails, throws before `run` is called.
   * @template T
   * @param {string} tool
   * @param {Record<string, unknown>} args
   * @param {() => T | Promise<T>} run
   * @param {{callId?: string, approval?: string}} [options]
   * @returns {Promise<T>}
   */
  async call(tool, args, run, options = {}) {
    const decision = await this.decide(tool, args, options);
    if (decision.verdict !== "allow") {
      throw new GateRefusal(decision);
    }
    const started = performance.now();
    let result;
    try {
      result = await run();
    } catch (err) {
      const name = ERROR_NAME.test(err?.name ?? "") ? err.name : "Error";
      await this._report(decision, { status: "error", error: name }, started);
      throw err;
    }
    await this._report(decision, { status: "ok", ...this._result(result) }, started);
    return result;
  }

  /**
   * Wrap an async function so that every call passes the gate as `tool`.
   * The wrapped function takes one object of named arguments, or positional
   * arguments named by `argumentNames`.
   * @template {(...args: any[]) => any} F
   * @param {F} fn
   * @param {{tool: string, argumentNames?: string[]}} options
   * @returns {(...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>>}
   */
  guard(fn, { tool, argumentNames }) {
    return guard(fn, { tool, session: this, argumentNames });
  }

  /** End the session on the gate. */
  async end() {
    await this.client.request("DELETE", `/v1/sessions/${encodeURIComponent(this.id)}`);
  }

  _verifyDecision(answer, tool, callId) {
    if (answer === null || typeof answer !== "object" ||
        typeof answer.receipt !== "string" || typeof answer.decision !== "string") {
      throw new VerificationError("the gate's decision has no receipt or decision id");
    }
    const verified = verifyReceipt(answer.receipt, this.client.logKeys,
      { origin: this.client.origin });
    const record = verified.record;
    // The record is what the log holds; the answer's other fields must match it.
    const expected = {
      type: "decision", id: answer.decision, session: this.id, tool,
      verdict: answer.verdict,
    };
    for (const [field, value] of Object.entries(expected)) {
      if (record[field] !== value) {
        throw new VerificationError(
          `the sealed record's ${field} is ${JSON.stringify(record[field])}, ` +
          `expected ${JSON.stringify(value)}`);
      }
    }
    if (BigInt(answer.index) !== verified.index) {
      throw new VerificationError(
        `the gate named index ${answer.index}, the receipt proves ${verified.index}`);
    }
    return {
      id: record.id,
      callId,
      tool,
      verdict: record.verdict,
      reasons: record.reasons,
      request: typeof answer.request === "string" ? answer.request : null,
      index: Number(verified.index),
      receipt: answer.receipt,
      record,
    };
  }

  _result(result) {
    let canonical;
    try {
      canonical = canonicalize(result === undefined ? null : result);
    } catch {
      canonical = undefined;
    }
    if (this.client.results === "value" && canonical !== undefined) {
      return { result: result === undefined ? null : result };
    }
    const text = canonical ?? String(result);
    return { result_sha256: createHash("sha256").update(text, "utf8").digest("hex") };
  }

  async _report(decision, outcome, started) {
    const body = {
      decision: decision.id,
      duration_ms: Math.max(0, performance.now() - started),
      ...outcome,
    };
    try {
      await this.client.request(
        "POST", `/v1/sessions/${encodeURIComponent(this.id)}/outcomes`, body);
    } catch (err) {
      // The tool ran; its result is returned all the same.
      this.unreported.push(decision);
      this.client.onOutcomeError?.(err, decision);
    }
  }
}

/**
 * Wrap `fn` so that each call is decided by the gate in `session` first.
 * @template {(...args: any[]) => any} F
 * @param {F} fn
 * @param {{tool: string, session: GateSession, argumentNames?: string[]}} options
 * @returns {(...args: Parameters<F>) => Promise<Awaited<ReturnType<F>>>}
 */
export function guard(fn, { tool, session, argumentNames }) {
  if (typeof fn !== "function") {
    throw new TypeError("guard needs the function to wrap");
  }
  if (typeof tool !== "string" || tool === "") {
    throw new TypeError("guard needs the tool's name: guard(fn, {tool: \"name\"})");
  }
  if (!(session instanceof GateSession)) {
    throw new TypeError("guard needs a session: start one with client.startSession()");
  }
  return async function guarded(...args) {
    const named = argumentNames === undefined
      ? namedArguments(tool, args)
      : Object.fromEntries(argumentNames
        .map((name, position) => [name, args[position]])
        .filter(([, value]) => value !== undefined));
    return session.call(tool, named, () => fn(...args));
  };
}

function namedArguments(tool, args) {
  const [first] = args;
  const plain = first !== null && typeof first === "object" && !Array.isArray(first);
  if (args.length === 0) {
    return {};
  }
  if (args.length === 1 && plain) {
    return first;
  }
  throw new GateError(
    `${tool} was called with ${args.length} positional arguments; pass one object ` +
    "of named arguments, or give guard() the argumentNames");
}
