"""lakegate's system of record: sources (passwords encrypted at rest), sync runs and their state
machine, datasets and their lineage, the audit log of tool calls; publishes the public sync events."""
