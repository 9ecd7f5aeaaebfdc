"""What the BentoML service (service.py) is built from: settings, request schemas, middleware, merging."""
