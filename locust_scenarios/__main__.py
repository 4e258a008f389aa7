"""`python -m locust_scenarios` is the `compliance-loadtest` suite command."""

from locust_scenarios._suite import main

raise SystemExit(main())
