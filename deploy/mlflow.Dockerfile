# The MLflow tracking server with SQLAlchemy's PostgreSQL driver; ranges as in requirements.txt.
FROM python:3.11-slim
RUN pip install --no-cache-dir "mlflow>=2.18,<4" "psycopg[binary]>=3.1"
EXPOSE 5000
