"""The evidence vault: ingest, encrypted storage, retention, holds, scrub."""
