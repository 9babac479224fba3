"""FaceNet face embeddings on MindSpore: a Hydra-configured experiment framework."""

import os

# oneDNN inside MindSpore 2.10 picks a reference convolution (about 40x slower) on AVX-512 CPUs unless this is
# set before mindspore is imported. Respect a value the user chose.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# MindSpore's C++ log: errors only unless the user asks for more (its warnings are deprecation notices about its
# own internals, printed on every import).
os.environ.setdefault("GLOG_v", "3")

__version__ = "0.1.0"


def __getattr__(name: str):
    """`facenet.Embedder` without importing the inference stack for every `import facenet`."""
    if name == "Embedder":
        from facenet.inference import Embedder

        return Embedder
    raise AttributeError(f"module 'facenet' has no attribute {name!r}")
