"""lakegate's MCP edge: the tools an AI agent calls, served over stdio or streamable HTTP.

The edge holds no database or warehouse credentials and touches no database: every tool is a
request over NATS to the catalog, the extractor or the loader, made for the caller's tenant.
"""
