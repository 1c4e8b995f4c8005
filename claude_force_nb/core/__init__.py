"""Facts with no machinery: results, errors, settings, pricing, agents."""
