"""`python -m agentim` → the command line."""

from agentim.cli import main

if __name__ == "__main__":
    main()
