"""Code generated from openapi/devstack.yaml by apps/api_first/generate.py: never edit it.

- `models`: the contract's schemas as Pydantic v2 models (datamodel-code-generator);
- `operations`: the contract's operation table, which the app's routes are built from.

Regenerate with `.venv/bin/python apps/api_first/generate.py`; the unit tests fail while it is
stale.
"""
