// Errors of the AgentGate client. Every one of them means the tool did not run.

/** Base class: the gate did not let a tool call run. */
export class GateError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * Bad input from outside: a receipt, note, checkpoint or proof that failed
 * verification, or a response that does not match the gate's API.
 */
export class VerificationError extends GateError {}

/** The gate could not be reached, or could not seal its decision. */
export class GateUnavailable extends GateError {}

/** The gate rejected the request itself (a bad token, a malformed call). */
export class GateRequestError extends GateError {
  /**
   * @param {string} message
   * @param {{status: number, code: string}} details
   */
  constructor(message, { status, code }) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * The gate refused the call: a deny, or a hold waiting for approvers.
 * `reasons` lists `{rule, text}`; `receipt` proves the refusal is in the log.
 */
export class GateRefusal extends GateError {
  /** @param {import("./client.js").Decision} decision */
  constructor(decision) {
    const lines = decision.reasons.map((reason) => `- ${reason.rule}: ${reason.text}`);
    const head = decision.verdict === "hold"
      ? (decision.request
        ? `AgentGate is holding this call to ${decision.tool} until the approvers ` +
          `sign approval request ${decision.request}, so the tool did not run.`
        : `AgentGate held this call to ${decision.tool} for human review, so the ` +
          "tool did not run.")
      : `AgentGate denied this call to ${decision.tool}, so the tool did not run.`;
    super([head, ...lines,
      `The decision is sealed at index ${decision.index} of the log.`].join("\n"));
    this.verdict = decision.verdict;
    this.reasons = decision.reasons;
    this.decision = decision;
    this.receipt = decision.receipt;
    this.request = decision.request;
  }
}
