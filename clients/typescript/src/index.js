// AgentGate client: ask the gate before each tool call, verify its receipt
// yourself, and run the tool only after a verified allow.

export { GateClient, GateSession, guard } from "./client.js";
export {
  GateError,
  GateRefusal,
  GateRequestError,
  GateUnavailable,
  VerificationError,
} from "./errors.js";
export { canonicalize, parseCanonical } from "./jcs.js";
export { computeInclusionRoot, leafHash, nodeHash, verifyInclusion } from "./merkle.js";
export { openNote, parseCheckpoint, parseVerifierKey } from "./note.js";
export { parseReceipt, verifyReceipt } from "./receipt.js";
