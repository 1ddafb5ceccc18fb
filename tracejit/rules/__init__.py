"""The rules of each transformation, one table per transform, keyed by the primitive object.

Layer: above the front end (the rules are written with tracejit's own NumPy functions, so
what they compute is ordinary IR under a trace and plain NumPy on arrays), below the
transformations that apply them (``autodiff.py``). A primitive's record (``ops.py``) holds
only what is intrinsic to it; how reverse mode treats it is a line in ``vjp.py``.
"""
