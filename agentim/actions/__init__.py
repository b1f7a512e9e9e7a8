"""The only write path, shared by http/ and ws/: write, commit, then publish."""
