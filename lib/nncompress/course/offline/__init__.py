"""The offline guard: put this folder on PYTHONPATH and its ``sitecustomize`` refuses every
non-loopback connection of the Python process (used by the notebook tests, grading and
``python -m nncompress.run --offline``)."""
