"""``python -m nncompress.run``: the command-line name of :mod:`nncompress.course.runner`."""
import sys

from .course.runner import main

if __name__ == "__main__":
    sys.exit(main())
