"""devstack_web: what both FastAPI reference apps share.

```python
from devstack_web import StackDep, contract_router, create_app, serve

router = contract_router()

@router.get("/examples/postgres/query")
async def postgres_query(stack: StackDep) -> QueryResult:
    return await stack.items("postgres").query()

app = create_app(implementation="code_first", routers=[router])
serve(app)  # HTTP and HTTPS, one process, one lifespan
```

The public API is what `__all__` lists; everything else is private and may change.
"""

from devstack_client.asgi import REQUEST_ID_PATTERN
from devstack_web import contract
from devstack_web.app import (
    CONTRACT_TITLE,
    CONTRACT_VERSION,
    StackDep,
    contract_router,
    create_app,
    default_client,
    get_stack,
    shape_openapi,
)
from devstack_web.delivery import consume_response
from devstack_web.handlers import field_errors
from devstack_web.middleware import is_json_media_type
from devstack_web.models import ContractModel
from devstack_web.problems import (
    PROBLEM_MEDIA_TYPE,
    DependencyName,
    FieldError,
    Problem,
    problem_body,
    problem_response,
    problem_responses,
    reason,
    sentence,
)
from devstack_web.server import serve, serve_async
from devstack_web.settings import DEFAULT_PORTS, WebSettings

__all__ = [
    "CONTRACT_TITLE",
    "CONTRACT_VERSION",
    "DEFAULT_PORTS",
    "PROBLEM_MEDIA_TYPE",
    "REQUEST_ID_PATTERN",
    "ContractModel",
    "DependencyName",
    "FieldError",
    "Problem",
    "StackDep",
    "WebSettings",
    "consume_response",
    "contract",
    "contract_router",
    "create_app",
    "default_client",
    "field_errors",
    "get_stack",
    "is_json_media_type",
    "problem_body",
    "problem_response",
    "problem_responses",
    "reason",
    "sentence",
    "serve",
    "serve_async",
    "shape_openapi",
]
