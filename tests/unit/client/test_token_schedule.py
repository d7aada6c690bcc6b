"""The token schedule: renew at 2/3 of the lease, log in again when renewal cannot help."""

from __future__ import annotations

import math

import pytest

from devstack_client.vault import TokenLease, backoff_delay, plan_refresh

FRACTION = 2 / 3


def test_a_fresh_token_is_renewed_at_two_thirds_of_its_ttl() -> None:
    lease = TokenLease(ttl=3600, login_ttl=3600, renewable=True, refreshed_at=100.0)
    plan = plan_refresh(lease, 100.0, fraction=FRACTION, can_login=True)
    assert plan.action == "renew"
    assert plan.at == pytest.approx(100.0 + 2400)


def test_after_a_renewal_the_next_one_counts_from_the_renewal() -> None:
    lease = TokenLease(ttl=3600, login_ttl=3600, renewable=True, refreshed_at=2500.0)
    plan = plan_refresh(lease, 2500.0, fraction=FRACTION, can_login=True)
    assert plan.action == "renew"
    assert plan.at == pytest.approx(4900.0)


def test_a_renewal_capped_by_the_max_ttl_leads_to_a_login() -> None:
    # The max TTL is near: Vault granted 20 s instead of the usual 60 s.
    lease = TokenLease(ttl=20, login_ttl=60, renewable=True, refreshed_at=1000.0)
    plan = plan_refresh(lease, 1000.0, fraction=FRACTION, can_login=True)
    assert plan.action == "login"
    assert plan.at == pytest.approx(1000.0 + 20 * FRACTION)
    assert plan.at < lease.expires_at


def test_a_token_that_is_not_renewable_is_replaced_by_a_login() -> None:
    lease = TokenLease(ttl=30, login_ttl=30, renewable=False, refreshed_at=0.0)
    assert plan_refresh(lease, 0.0, fraction=FRACTION, can_login=True).action == "login"


def test_an_expired_token_leads_to_an_immediate_login() -> None:
    lease = TokenLease(ttl=10, login_ttl=10, renewable=True, refreshed_at=0.0)
    plan = plan_refresh(lease, 11.0, fraction=FRACTION, can_login=True)
    assert (plan.action, plan.at) == ("login", 11.0)


def test_a_static_token_is_only_ever_renewed() -> None:
    renewable = TokenLease(ttl=30, login_ttl=30, renewable=True, refreshed_at=0.0)
    assert plan_refresh(renewable, 0.0, fraction=FRACTION, can_login=False).action == "renew"
    fixed = TokenLease(ttl=30, login_ttl=30, renewable=False, refreshed_at=0.0)
    assert plan_refresh(fixed, 0.0, fraction=FRACTION, can_login=False).action == "none"


def test_a_token_without_expiry_needs_nothing() -> None:
    lease = TokenLease(ttl=0, login_ttl=0, renewable=False, refreshed_at=0.0)
    plan = plan_refresh(lease, 5.0, fraction=FRACTION, can_login=True)
    assert plan.action == "none"
    assert math.isinf(plan.at)


def test_a_short_ttl_schedule_never_lets_the_token_expire() -> None:
    """Simulate a 3 s TTL, 20 s max TTL token for a minute: no moment without a valid token."""
    ttl, max_ttl = 3.0, 20.0
    now, issued = 0.0, 0.0
    lease = TokenLease(ttl=ttl, login_ttl=ttl, renewable=True, refreshed_at=now)
    logins = renewals = 0
    while now < 60:
        plan = plan_refresh(lease, now, fraction=FRACTION, can_login=True)
        assert plan.at < lease.expires_at, "the next action must come before expiry"
        now = plan.at
        if plan.action == "renew":
            granted = min(ttl, issued + max_ttl - now)
            lease = TokenLease(granted, ttl, True, now)
            renewals += 1
        else:
            issued = now
            lease = TokenLease(ttl, ttl, True, now)
            logins += 1
    assert logins >= 2
    assert renewals >= 10


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 8, 20])
def test_backoff_grows_and_is_jittered_within_bounds(attempt: int) -> None:
    ceiling = min(30.0, 0.5 * 2 ** (attempt - 1))
    low = backoff_delay(attempt, 0.5, 30.0, rand=lambda: 0.0)
    high = backoff_delay(attempt, 0.5, 30.0, rand=lambda: 0.999999)
    assert low == pytest.approx(ceiling / 2)
    assert ceiling / 2 <= high <= ceiling
    assert backoff_delay(attempt, 0.5, 30.0) <= 30.0
