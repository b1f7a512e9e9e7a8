"""quart-trio blueprints: parse → authorize → actions (writes) or store (reads) → envelope."""
