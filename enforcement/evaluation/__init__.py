"""Replays of public agent benchmarks through the gate.

``agentgate demo`` replays the AgentDojo suites; see ``agentdojo.py``.
"""
