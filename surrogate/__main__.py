"""``python -m surrogate``: see :mod:`surrogate.cli`."""

import sys

from surrogate.cli import main

sys.exit(main())
