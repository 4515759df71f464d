"""DNS propagation: asking many servers at once, and judging their answers."""
