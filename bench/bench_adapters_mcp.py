"""Time what the AutoGen adapter, the MCP proxy and the TypeScript client add
to a tool call.

The gate runs on a real, durable SQLite log (WAL, ``synchronous=FULL``) and
vault in a temporary directory, with the default policy less its rate limits
(the benchmark calls far faster than an agent) and a one-link delegation of
every tool. Each figure is a p50 over ``--runs`` calls after ``--warmup``
calls, the plain and the gated call alternating:

- AutoGen: one agent turn of an ``AssistantAgent`` whose replay model emits
  one call of ``get_balance``, with the plain ``FunctionTool`` and with
  ``gate_tools``; the gate is in process;
- MCP: ``call_tool("get_balance")`` from an MCP client session to a tiny
  MCP server over stdio, directly and through ``agentgate mcp-proxy`` (a
  second process, also over stdio, holding the gate);
- TypeScript: the tool function called directly and through
  ``session.guard`` of the client in ``clients/typescript``, against
  ``agentgate gate serve`` on 127.0.0.1 (skipped without ``node``).

Run it from the repository root::

    .venv/bin/python bench/bench_adapters_mcp.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import percentile, print_header

from enforcement.evaluation.embedded import SteppingClock, create_deployment
from enforcement.policy import load_policy, parse_policy
from enforcement.timeutil import utc_now

REPOSITORY = Path(__file__).resolve().parents[1]
AGENTGATE = str(Path(sys.executable).parent / "agentgate")
PURPOSE = "tell me the balance of my bank account"
TOKEN = "bench-agent-token-0123456789abcdef"

SERVER = '''
from mcp.server.mcpserver import MCPServer

app = MCPServer("bench-bank")


@app.tool()
def get_balance(account: str) -> str:
    """Return the balance of the user's bank account."""
    return f"balance of {account}: 1200"


app.run()
'''

NODE_SCRIPT = '''
import { GateClient } from "%(client)s";

const [url, token, logKey, purpose, runs, warmup] = process.argv.slice(2);
const client = new GateClient({ url, token, logKey });
const session = await client.startSession({ purpose });
const tool = async ({ account }) => ({ account, balance: 1200 });
const guarded = session.guard(tool, { tool: "get_balance" });
const direct = [];
const gated = [];
for (let n = 0; n < Number(warmup) + Number(runs); n++) {
  let started = performance.now();
  await tool({ account: "checking" });
  const plain = performance.now() - started;
  started = performance.now();
  await guarded({ account: "checking" });
  const wrapped = performance.now() - started;
  if (n >= Number(warmup)) {
    direct.push(plain);
    gated.push(wrapped);
  }
}
console.log(JSON.stringify({ direct, gated }));
'''


def bench_policy(directory: Path) -> Path:
    """Write the default policy without its rate limits, as JSON."""
    document = load_policy().document()
    document["rules"] = [rule for rule in document["rules"]
                         if rule["kind"] != "rate_limit"]
    path = directory / "bench-policy.json"
    path.write_text(json.dumps(document))
    return path


def gate_files(directory: Path) -> tuple[Path, str]:
    """Write a deployment and its gate configuration; return it and the log key."""
    policy_path = bench_policy(directory)
    deployment = create_deployment(directory / "gate",
                                   policy=parse_policy(json.loads(
                                       policy_path.read_text())))
    log_key = deployment.log_key
    gate = directory / "gate"
    (gate / "agent.cert.json").write_text(json.dumps(deployment.certificate.to_json()))
    (gate / "principal.pub").write_text(deployment.principal.verifier_key + "\n")
    key_file = next((gate / "keys").glob("*.key"))
    deployment.close()
    config = gate / "gate.toml"
    config.write_text(
        f'[log]\ndatabase = "ledger.db"\nkey = "keys/{key_file.name}"\n\n'
        f'[gate]\npolicy = "{policy_path}"\ntrust_anchors = ["principal.pub"]\n'
        'chain = ["agent.cert.json"]\nvault = "vault.db"\n')
    return config, log_key


# -- AutoGen ----------------------------------------------------------------------

def bench_autogen(directory: Path, runs: int, warmup: int) -> tuple[list, list]:
    from autogen_agentchat.agents import AssistantAgent
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, RequestUsage
    from autogen_core.tools import FunctionTool
    from autogen_ext.models.replay import ReplayChatCompletionClient

    from enforcement.adapters.autogen import gate_tools

    def get_balance(account: str) -> str:
        """Return the balance of the user's bank account."""
        return f"balance of {account}: 1200"

    model_info = {"function_calling": True, "vision": False, "json_output": False,
                  "family": "unknown", "structured_output": False}
    deployment = create_deployment(directory / "autogen",
                                   clock=SteppingClock(utc_now(), 1.0))
    plain_tools = [FunctionTool(get_balance, description="Return the balance.")]
    gated_tools = gate_tools(plain_tools, deployment.gate)

    async def turn(tools, n: int) -> float:
        call = FunctionCall(id=f"call-{n}", name="get_balance",
                            arguments='{"account": "checking"}')
        model = ReplayChatCompletionClient(
            [CreateResult(finish_reason="function_calls", content=[call],
                          usage=RequestUsage(0, 0), cached=False), "done"],
            model_info=model_info)
        agent = AssistantAgent("bench", model, tools=tools)
        started = time.perf_counter()
        await agent.run(task="balance?")
        return time.perf_counter() - started

    async def main() -> tuple[list, list]:
        plain, gated = [], []
        with deployment.gate.session(PURPOSE):
            for n in range(warmup + runs):
                first = await turn(plain_tools, n)
                second = await turn(gated_tools, n)
                if n >= warmup:
                    plain.append(first)
                    gated.append(second)
        return plain, gated

    try:
        return asyncio.run(main())
    finally:
        deployment.close()


# -- MCP ----------------------------------------------------------------------------

def bench_mcp(directory: Path, config: Path, runs: int,
              warmup: int) -> tuple[list, list]:
    import anyio
    from mcp import Client, StdioServerParameters

    script = directory / "bench_server.py"
    script.write_text(SERVER)
    server = StdioServerParameters(command=sys.executable, args=[str(script)])
    proxy = StdioServerParameters(command=AGENTGATE, args=[
        "mcp-proxy", "--config", str(config), "--purpose", PURPOSE, "--",
        sys.executable, str(script)])

    async def main() -> tuple[list, list]:
        direct, proxied = [], []
        async with Client(server) as plain, Client(proxy) as gated:
            await plain.list_tools()
            await gated.list_tools()
            for n in range(warmup + runs):
                started = time.perf_counter()
                await plain.call_tool("get_balance", {"account": "checking"})
                first = time.perf_counter() - started
                started = time.perf_counter()
                result = await gated.call_tool("get_balance", {"account": "checking"})
                second = time.perf_counter() - started
                if result.is_error:
                    raise RuntimeError(f"the proxy rejected call {n}: {result.content}")
                if n >= warmup:
                    direct.append(first)
                    proxied.append(second)
        return direct, proxied

    return anyio.run(main)


# -- TypeScript -----------------------------------------------------------------------

def bench_typescript(config: Path, log_key: str, runs: int,
                     warmup: int) -> tuple[list, list] | None:
    node = shutil.which("node")
    if node is None:
        print("node is not installed; the TypeScript client is not measured")
        return None
    server = subprocess.Popen(
        [AGENTGATE, "gate", "serve", "--config", str(config), "--port", "0",
         "--log-level", "warning"],
        env={**os.environ, "AGENTGATE_GATE_TOKEN": TOKEN},
        stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stderr:
            match = re.search(r"serving gate on (http://\S+)", line)
            if match:
                url = match.group(1)
                break
        if url is None:
            raise RuntimeError("agentgate gate serve did not start")
        threading.Thread(target=server.stderr.read, daemon=True).start()
        client = (REPOSITORY / "clients" / "typescript" / "src" / "index.js").as_uri()
        finished = subprocess.run(
            [node, "--input-type=module", "-", url, TOKEN, log_key, PURPOSE,
             str(runs), str(warmup)],
            input=NODE_SCRIPT % {"client": client}, capture_output=True, text=True,
            check=True, timeout=600)
    finally:
        server.terminate()
        server.wait(timeout=30)
    times = json.loads(finished.stdout)
    return ([ms / 1000 for ms in times["direct"]], [ms / 1000 for ms in times["gated"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200,
                        help="timed calls of each kind (default 200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="untimed calls of each kind first (default 20)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    print_header("Adapter overhead: AutoGen, MCP proxy, TypeScript client")
    rows = []
    with tempfile.TemporaryDirectory(prefix="agentgate-bench-") as temporary:
        directory = Path(temporary)
        config, log_key = gate_files(directory)
        plain, gated = bench_autogen(directory, arguments.runs, arguments.warmup)
        rows.append(("AutoGen (`gate_tools`), one agent turn", plain, gated))
        direct, proxied = bench_mcp(directory, config, arguments.runs,
                                    arguments.warmup)
        rows.append(("MCP (`agentgate mcp-proxy`), stdio both sides", direct, proxied))
        measured = bench_typescript(config, log_key, arguments.runs, arguments.warmup)
        if measured is not None:
            rows.append(("TypeScript (`session.guard`), gate over HTTP", *measured))

    print(f"{arguments.runs} timed calls of each kind after {arguments.warmup}; "
          "p50 in ms")
    print()
    print("| | plain | gated | overhead |")
    print("|---|---|---|---|")
    for name, plain, gated in rows:
        base = percentile(plain, 0.5) * 1e3
        wrapped = percentile(gated, 0.5) * 1e3
        print(f"| {name} | {base:.2f} | {wrapped:.2f} | {wrapped - base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
