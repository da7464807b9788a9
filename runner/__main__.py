"""`python -m runner`: how the daemon starts a runner."""

from runner.main import main

raise SystemExit(main())
