"""The MCP tools, one module per noun: sources, sync runs, the warehouse, transforms, the catalog, AI assists."""
