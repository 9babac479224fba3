"""Networks that map images to embeddings; mining and losses live elsewhere."""
