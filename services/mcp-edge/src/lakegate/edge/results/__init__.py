"""What the tools return: pydantic models that become each tool's output schema.

They are the edge's own, shaped for a model reading them, and built from the message contracts
the other services answer with; contracts carry versions and tenant ids a tool caller needs not see.
One module per noun, like the tools.
"""
