# The project (worker and service): PyTorch's CPU wheel first, then requirements.txt. For GPU workers,
# build with --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126 (the wheel brings its CUDA libraries).
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir "torch>=2.4,<2.15" --index-url "$TORCH_INDEX" \
    && pip install --no-cache-dir -r requirements.txt
COPY . .
