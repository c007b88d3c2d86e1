import sys

from dolite.testing.sqllogictest.cli import main

sys.exit(main())
