"""lakegate's system of record: sources (passwords encrypted at rest), sync runs and their state
machine, datasets and their lineage; publishes the public sync events."""
