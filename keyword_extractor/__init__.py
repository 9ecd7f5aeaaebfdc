"""Core of kobart-keywords: data, models, inference and metrics.

Plain Python: nothing here imports Prefect, BentoML or Streamlit, so the
pipeline tasks, the service and the app can all share it.
"""

__version__ = "0.1.0"
