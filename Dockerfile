FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY eventstore eventstore
COPY dispatch dispatch
COPY channels channels
COPY gateway gateway
COPY bench bench
COPY gis_data gis_data
RUN pip install --no-cache-dir .
USER nobody
EXPOSE 8080 7100/tcp 7100/udp
CMD ["intake", "serve"]
