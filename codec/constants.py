"""Constants that the codec and the ``lqz`` command's help texts share.

This module imports nothing, so that ``lqz --help`` can show them without loading numpy or
torch.
"""

#: File name suffix of ``.lqz`` files.
SUFFIX = ".lqz"

#: Most pixels :func:`lqz.decode` decodes unless told otherwise (2^28, e.g. 16384 x 16384): a
#: valid file of 2 kB can declare 65535 x 65535 pixels, 12.9 GB of RGB.
DEFAULT_MAX_PIXELS = 2**28
