import sys

from tools.labcloud.cli import main

sys.exit(main())
