"""The admin login refuses an address after too many wrong passwords, even the right one."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _login(client: Client, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": "organizer", "password": password})


def test_wrong_passwords_lock_the_address_out_of_the_admin(django_user_model, settings):
    django_user_model.objects.create_superuser("organizer", "o@example.org", "right-password")
    attacker = Client(REMOTE_ADDR="203.0.113.50")
    answers = [_login(attacker, "wrong").status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the form again, then locked
    locked = _login(attacker, "right-password")
    assert locked.status_code == 429 and "_auth_user_id" not in attacker.session
    # The organizer at another address still logs in.
    organizer = Client(REMOTE_ADDR="198.51.100.60")
    assert _login(organizer, "right-password").status_code == 302
    assert organizer.get("/admin/").status_code == 200
