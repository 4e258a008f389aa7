# The load generator's image: Locust with the compliance scenarios, profiles and analysis installed.
# One image for every role: the master (`--master`), the workers (`--worker --master-host ...`), the
# analysis (`--entrypoint python ... -m analysis`) and the one-command suite (`--entrypoint
# compliance-loadtest`). See docs/distributed.md and deploy/kubernetes/.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Every package pyproject.toml installs, and nothing else (.dockerignore keeps the rest out).
COPY pyproject.toml README.md ./
COPY locust_scenarios ./locust_scenarios
COPY compliance_loadtest ./compliance_loadtest
COPY profiles ./profiles
COPY analysis ./analysis
COPY reference_backend ./reference_backend
# Installed, not run from /src: workers load the scenarios from the installed package, and the shared
# modules must be importable by their dotted names on every machine. The project's own source is what
# is installed here; its dependencies' versions are the lower bounds in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".[postgres]" && rm -rf /src

# Locust's own settings by environment: the scenarios folder of the installed package.
ENV LOCUST_LOCUSTFILE=/usr/local/lib/python3.11/site-packages/locust_scenarios

# A numeric user, so Kubernetes can check `runAsNonRoot` and a volume's `fsGroup` can match it.
RUN useradd --create-home --uid 10001 --user-group locust
USER 10001
WORKDIR /home/locust

# 8089: web UI of a master; 5557: where workers connect to the master.
EXPOSE 8089 5557
ENTRYPOINT ["locust"]
CMD ["--help"]
