"""`agentim import-agentim`: copy an AgentIM database (728c8f5 or 631a1ad schema) into the hub's.

plan.py is pure (which tables and columns, how a source row becomes a hub row); source.py reads
the AgentIM database, whatever its column types; target.py writes the hub's database in one
transaction; uploads.py copies the files the imported rows point at; run.py puts them together.
The importer is a one-off tool that talks to a foreign schema, so its SQL lives here rather than
in store/, and it writes rows directly rather than through actions/ (no events: no hub serves
the rows being copied yet, and clients refetch over HTTP anyway).
"""
