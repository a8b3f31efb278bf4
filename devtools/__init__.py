"""Local-only tools: the dev server that stands in for the Functions host, and the OpenAI-compatible echo model."""
