"""`python -m compliance_loadtest` is the `compliance-loadtest` suite command."""

from compliance_loadtest.suite import main

raise SystemExit(main())
