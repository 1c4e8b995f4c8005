"""Running calls: the orchestrator, retries, limits and the private event loop."""
