"""Networks that map images to embeddings (backbone + head; mining and losses live elsewhere), and `io`: a model
on disk (checkpoint + sidecar), read and rebuilt without anything of training."""
