"""The core's connections to the platform: MLflow tracking and registry, BentoML packaging.

The domain modules beside this package never import it; tasks, the service and the CLIs do.
"""
