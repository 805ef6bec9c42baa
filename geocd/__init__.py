"""geocd: semantic change detection between two georeferenced images.

The heavy pieces (torch, torchgeo) are imported by the submodules that need them,
so importing :mod:`geocd` itself stays cheap.
"""

__version__ = "0.1.0"
