"""Exceptions raised by the pluggable scorers.

A scorer that raises makes the gate deny the call, so each of these means
that no score was produced and the tool did not run. Set-up mistakes (an
empty composition, a missing model, a bad URL) raise
``enforcement.errors.ConfigError`` at construction instead.
"""

from __future__ import annotations

from enforcement.errors import GateError


class ScoringError(GateError):
    """A scorer failed to produce a usable score for a call."""


class JudgeError(ScoringError):
    """The LLM judge did not return a usable verdict: the request failed or
    timed out, or the message content was not the JSON verdict that the
    prompt requests."""
