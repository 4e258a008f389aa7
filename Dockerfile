# The load generator's image: Locust with the compliance scenarios, profiles and analysis installed.
# One image for every role: the master (`--master`), the workers (`--worker --master-host ...`) and the
# one-command suite (`--entrypoint compliance-loadtest`). See docs/suite.md and deploy/kubernetes/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY locust_scenarios ./locust_scenarios
COPY profiles ./profiles
COPY analysis ./analysis
COPY reference_backend ./reference_backend
# Installed, not run from /src: workers load the scenarios from the installed package, and the shared
# `_underscore` modules must be importable by their dotted names on every machine.
RUN pip install ".[postgres]" && rm -rf /src

# Locust's own settings by environment: the scenarios folder of the installed package.
ENV LOCUST_LOCUSTFILE=/usr/local/lib/python3.11/site-packages/locust_scenarios

RUN useradd --create-home --uid 10001 locust
USER locust
WORKDIR /home/locust

# 8089: web UI of a master; 5557: where workers connect to the master.
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
CMD ["--help"]
