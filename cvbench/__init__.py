"""cvbench: action recognition in the compressed video domain, compared on equal terms."""

__version__ = "0.1.0"
