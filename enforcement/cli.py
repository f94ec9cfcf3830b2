"""The ``agentgate`` command line.

Subcommands live in the package that owns them and are imported only when
they are used, so ``agentgate verify`` loads the verifier and nothing else.
"""

import importlib

import click

# Subcommand name -> "module:attribute" of its click command.
_SUBCOMMANDS = {
    "keygen": "ledger.cli:keygen",
    "delegate": "enforcement.delegate_cli:delegate",
    "log": "ledger.cli:log",
    "verify": "verifier.cli:verify",
    "demo": "enforcement.evaluation.cli:demo",
    "eval": "enforcement.evaluation.eval_cli:evaluate",
    "approvals": "enforcement.commands:approvals",
    "disclose": "enforcement.commands:disclose",
    "serve": "ledger.cli:serve",
    "publish": "ledger.cli:publish",
    "export": "ledger.cli:export",
    "gate": "enforcement.gate_cli:gate",
    "mcp-proxy": "enforcement.adapters.mcp_cli:mcp_proxy",
    "witness": "verifier.witness_cli:witness",
    "monitor": "verifier.monitor_cli:monitor",
    "audit": "verifier.audit_cli:audit",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx, cmd_name):
        target = _SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="agentgate-runtime")
def main():
    """AgentGate: authorize agent tool calls and prove every decision."""
