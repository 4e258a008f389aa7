"""The load shape that runs `--load-profile` (profiles/*.yaml or a YAML path); plain Locust without it.

Its code is `compliance_loadtest.plugin.shape.LoadProfileShape`; this file puts it where
`locust -f locust_scenarios` finds it. A locustfile of your own gets it with
`from locust_scenarios import LoadProfileShape`.
"""

from locust_scenarios import LoadProfileShape

__all__ = ["LoadProfileShape"]
