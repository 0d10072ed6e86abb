"""``python -m n3f``: the same CLI as the ``n3f`` command."""

import sys

from n3f.cli import main

sys.exit(main())
