import sys

from aigc_core.cli import main

sys.exit(main())
