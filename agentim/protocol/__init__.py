"""Pure protocol code (no trio, no I/O): wire formats, text rules, mentions and limits."""
