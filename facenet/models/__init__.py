"""Networks that map images to embeddings (backbone + head; mining and losses live elsewhere); `io`: a model on disk
(checkpoint + sidecar), read and rebuilt without anything of training; `pretrained`: published weights converted
into such checkpoints; `load`: what a user names (a path or `pretrained:<name>`) to a network."""
