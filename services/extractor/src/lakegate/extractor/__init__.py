"""lakegate's extractor: reads source PostgreSQL databases (read-only) and streams tables out as Arrow."""
