"""Text for tests of the JSON the catalog writes itself."""

#: Text that JSON must escape, or that a careless writer would: quotes, backslashes, controls, non-ASCII.
AWKWARD = 'a "quoted" \\ back\tslash\n\x01\x1f é ✓ \u2028 😀'
