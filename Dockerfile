# The tokenhub image: the CLI, the Faust worker, the Dagster code and the simulator.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 \
    TOKENHUB_HOME=/data \
    DAGSTER_HOME=/data/dagster
COPY pyproject.toml README.md ./
COPY tokenhub ./tokenhub
COPY streams ./streams
COPY warehouse ./warehouse
COPY pipelines ./pipelines
RUN pip install --no-cache-dir . && mkdir -p /data/dagster
VOLUME ["/data"]
ENTRYPOINT ["tokenhub"]
CMD ["--help"]
