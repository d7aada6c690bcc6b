"""The project's own suites, unchanged, against the stack in containers.

Each name imported here is collected again in this folder, where `stack` is the compose stack
(conftest.py): the parity suite (every implementation against every other, cross-implementation
round trips), the contract suites (schemathesis and the JSON corner cases) and the servers' TLS,
credentials and foreign-CA checks all run against the containerised servers and APIs.
"""

from __future__ import annotations

from tests.integration.test_stack_servers import (  # noqa: F401
    test_direct_tls_ports_refuse_a_foreign_ca,
    test_every_listening_port_is_on_loopback,
    test_health_command_exits_zero_when_all_healthy,
    test_mongodb_rejects_a_wrong_password,
    test_mongodb_tls_with_approle_credentials,
    test_mysql_refuses_a_foreign_ca,
    test_mysql_refuses_plaintext_with_a_valid_password,
    test_mysql_tls_with_approle_credentials,
    test_pgbouncer_tls_with_postgres_credentials,
    test_postgres_refuses_a_foreign_ca,
    test_postgres_refuses_plaintext_with_a_valid_password,
    test_postgres_tls_with_approle_credentials,
    test_rabbitmq_tls_with_approle_credentials,
    test_redis_cluster_tls_on_every_master,
    test_redis_requires_the_password,
    test_status_reports_every_service_healthy,
)
from tests.integration.test_vault_security import (  # noqa: F401
    test_each_approle_issues_only_its_own_certificate,
    test_each_approle_reads_exactly_what_the_table_allows,
    test_no_policy_grants_a_wildcard_on_secrets,
)
