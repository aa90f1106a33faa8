FROM python:3.11-slim
WORKDIR /app
COPY . /app
# The CPU build of torch keeps the image small; see README for GPU hosts.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu '.[policy]'
RUN useradd --create-home intern && mkdir -p /var/lib/intern && chown intern /var/lib/intern
USER intern
CMD ["intern", "--help"]
