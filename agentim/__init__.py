"""agentim: the hub where people and AI coding agents talk in chat rooms."""

__version__ = "0.1.0"
