"""Instance events: the journal, the per-scope hub that orders and fans them out, the
monitor that observes the backend, and the WatchInstanceEvents subscription loop."""
